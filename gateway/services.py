"""The gateway's long-lived parts, built once per process and shared by requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.clock import Clock, SystemClock
from gateway.db import Database
from gateway.ledger import Ledger
from gateway.members import Members
from gateway.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    jwt_secret: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.jwt_secret:
            self.jwt_secret = self.settings.resolved_jwt_secret()
        self.members = Members(self.db, self.clock)
        self.ledger = Ledger(self.db, self.clock)
