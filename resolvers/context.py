"""The per-request context every resolver receives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from dataloaders.members import member_loader
from gateway.core.auth import Principal
from gateway.core.errors import DomainError, member_not_found
from gateway.domain.program import Program
from gateway.services import Services
from gateway.store.mongo import Document
from gateway.store.program import load_program


@dataclass
class Context:
    services: Services
    principal: Principal | None
    request: Any = None
    response: Any = None
    loaders: dict[str, DataLoader[Any, Any]] = field(default_factory=dict)
    auth_error: DomainError | None = None
    _program: asyncio.Future[Program] | None = None
    _now: datetime | None = None
    # One instant per request, so every field of an answer (price, status, eligibility)
    # judges the same moment; a WebSocket connection lives long, so it asks the clock.
    fixed_instant = True

    @property
    def now(self) -> datetime:
        if not self.fixed_instant:
            return self.services.clock.now()
        if self._now is None:
            self._now = self.services.clock.now()
        return self._now

    async def program(self) -> Program:
        """The program configuration, read once per request.

        Sibling resolvers ask concurrently, so the first read is shared as a
        future rather than started again by every caller that finds no value yet.
        """
        if self._program is None:
            self._program = asyncio.ensure_future(load_program(self.services.db))
        return await asyncio.shield(self._program)

    def remember_program(self, program: Program) -> None:
        """After an admin changed the program, later fields of the same request see the new one."""
        settled: asyncio.Future[Program] = asyncio.get_running_loop().create_future()
        settled.set_result(program)
        self._program = settled

    @property
    def member_loader(self) -> DataLoader[str, Document | None]:
        if "member" not in self.loaders:
            self.loaders["member"] = member_loader(self.services.members)
        return self.loaders["member"]

    def loader(self, name: str, factory: Any) -> DataLoader[Any, Any]:
        """The request's loader called ``name``, built by ``factory(services)`` on first use."""
        if name not in self.loaders:
            self.loaders[name] = factory(self.services)
        return self.loaders[name]

    async def load_member(self, member_id: str) -> Document:
        doc = await self.member_loader.load(member_id)
        if doc is None:
            raise member_not_found(member_id)
        return doc

    def forget_member(self, member_id: str) -> None:
        """After a write, a later field in the same request must see fresh data."""
        with contextlib.suppress(KeyError):  # nothing cached for this member yet
            self.member_loader.clear(member_id)


async def together(*steps: Awaitable[Any]) -> list[Any]:
    """Await independent reads concurrently (one round trip of latency instead of several);
    if some fail, the first failing step in argument order is what the client sees."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


Info = StrawberryInfo[Context, None]
