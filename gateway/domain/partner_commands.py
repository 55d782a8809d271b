"""Partner operations as commands: what a partner asks for, however it arrived (GraphQL or Kafka).

Pure rules: validation, the idempotency payload both channels share, the reversal
window, and what an operation counts against a daily limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import Any

from gateway.core.errors import BadInput, DomainError
from gateway.domain.exchange import Direction
from gateway.domain.money import amount_problem

COMMAND_FIELDS = ("event_id", "member_ref", "points", "amount", "direction", "original_event_id", "occurred_at")


class OperationType(StrEnum):
    ACCRUE = "ACCRUE"
    BURN = "BURN"
    REVERSE = "REVERSE"
    CONVERT = "CONVERT"


@dataclass(frozen=True)
class PartnerCommand:
    """One partner operation.

    ``member_ref`` is the partner's member reference from the link, or the
    coalition member id (a reference match wins). ``points`` is coalition points
    for ACCRUE/BURN; for CONVERT it is in the currency the direction starts from.
    ``occurred_at`` (the partner's clock) is recorded but not part of the idempotency
    payload, so a GraphQL retry without it still matches the Kafka event.
    """

    type: OperationType
    event_id: str
    member_ref: str | None = None
    points: int | None = None
    amount: int | None = None
    direction: Direction | None = None
    original_event_id: str | None = None
    occurred_at: datetime | None = field(default=None, compare=False)

    @classmethod
    def from_request(cls, type: OperationType | str, request: object) -> PartnerCommand:
        """The command a request carries: any object with (some of) the ``COMMAND_FIELDS`` attributes.

        GraphQL inputs and Kafka events both arrive here, so the two channels build
        the same command from the same fields.
        """
        values: dict[str, Any] = {name: getattr(request, name, None) for name in COMMAND_FIELDS}
        direction = values["direction"]
        if direction is not None:  # a Direction, its value, or a mirror of it (a GraphQL enum)
            values["direction"] = Direction(direction.value if isinstance(direction, Enum) else direction)
        return cls(type=OperationType(type), **values)

    def validated(self) -> PartnerCommand:
        if not 1 <= len(self.event_id) <= 200:
            raise BadInput("eventId must be 1 to 200 characters", field="eventId")
        if self.type is not OperationType.REVERSE and not self.member_ref:
            raise BadInput("memberRef is required", field="memberRef")
        if self.type is OperationType.ACCRUE:
            if (self.points is None) == (self.amount is None):
                raise BadInput("give exactly one of points or amount", field="points")
        elif self.type in (OperationType.BURN, OperationType.CONVERT) and self.points is None:
            raise BadInput("points is required", field="points")
        if self.points is not None and not 1 <= self.points <= 1_000_000_000:
            raise BadInput("points must be from 1 to 1,000,000,000", field="points")
        if self.amount is not None and (problem := amount_problem(self.amount)):
            raise BadInput(f"amount {problem}", field="amount")
        if self.type is OperationType.CONVERT and self.direction is None:
            raise BadInput("direction is required", field="direction")
        if self.type is OperationType.REVERSE and not self.original_event_id:
            raise BadInput("originalEventId is required", field="originalEventId")
        return self

    def idempotency_payload(self) -> dict[str, Any]:
        """What must match when the same event id comes again (GraphQL and Kafka share it)."""
        return {
            "operation": self.type.value,
            "memberRef": self.member_ref,
            "points": self.points,
            "amount": self.amount,
            "direction": self.direction.value if self.direction else None,
            "originalEventId": self.original_event_id,
        }


def reversal_window_closes_at(made_at: datetime, window_days: int) -> datetime:
    """The last instant a partner may reverse an operation made at ``made_at`` (gateway clock)."""
    return made_at + timedelta(days=window_days)


def check_reversal_window(made_at: datetime, now: datetime, window_days: int) -> None:
    closes = reversal_window_closes_at(made_at, window_days)
    if now > closes:
        raise DomainError(
            f"The reversal window of {window_days} days for this operation closed at {closes.isoformat()}",
            code="REVERSAL_WINDOW_CLOSED",
            windowDays=window_days,
            closedAt=closes.isoformat(),
        )


def daily_usage(op: Mapping[str, Any]) -> int:
    """What an operation counts against its daily limit: coalition points, gross of any fee."""
    if op["type"] != OperationType.CONVERT:
        return int(op["points"])
    fee = op.get("fee", 0)
    return int(op["points"] + fee if op["direction"] == Direction.PARTNER_TO_COALITION else op["points"] - fee)
