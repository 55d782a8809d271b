"""A MongoDB command listener for round-trip tests: what a client sent, one entry per command."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from gateway.services import Services
from gateway.store.mongo import Database, create_client

# The rate-limit counter's upsert (one per request, whatever the request) is no operation's cost.
NOT_COUNTED = "rate_limits"


class CommandLog(CommandListener):
    """Every command a client starts: ``commands`` its names, ``collections`` the collection each
    names, ``seen`` both ("find program"; the name alone for a command without a collection)."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.collections: list[str] = []
        self.seen: list[str] = []

    def clear(self) -> None:
        self.commands.clear()
        self.collections.clear()
        self.seen.clear()

    def started(self, event: CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        if target == NOT_COUNTED:
            return
        self.commands.append(event.command_name)
        self.collections.append(str(target))
        self.seen.append(f"{event.command_name} {target}" if isinstance(target, str) else event.command_name)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


@asynccontextmanager
async def logged_services(
    mongo_uri: str, db: Database, settings: Any, clock: Any, jwt_secret: str
) -> AsyncIterator[tuple[Services, CommandLog]]:
    """Services on the test's database through a client of their own that logs every command."""
    log = CommandLog()
    client = create_client(mongo_uri, event_listeners=[log])
    try:
        yield Services(settings=settings, db=Database(client, db.db.name), clock=clock, jwt_secret=jwt_secret), log
    finally:
        await client.close()
