"""Loading and saving the program configuration document, with the program cached in process.

Every request needs the program (tiers, rules), and it changes a few times a year, so a
gateway keeps the parsed program in memory instead of reading and validating it per request:

- Reads outside a transaction answer from memory while this process's change-stream
  watcher is live: the watcher watches the ``program`` collection too and drops the cached
  program on any change, from any replica, so a read sees a change within the stream's lag
  (milliseconds). Without a live watcher (CLI commands, tests without workers) every read
  goes to MongoDB, as it always did.
- Reads inside a transaction (every ledger write) always read the document in their
  snapshot, so a write is judged by exactly the program its transaction sees; only the
  pydantic validation is skipped when the stored configuration is the one parsed last.
- A save in this process drops the cached program at once.

A read stores what it found only if nothing invalidated the cache while it was in flight
(a generation counter), so a slow read can never put an older program back.

The document carries a ``version`` that every save increments. Admin writes save with
``replace_program``, which only succeeds while the version is still the one they read
(compare-and-set), so two admins editing at once never lose a change.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from gateway.domain.program import DEFAULT_PROGRAM, Program
from gateway.store.mongo import Database, Document

PROGRAM_ID = "current"


class StaleProgram(Exception):
    """The program changed since it was read (internal: callers retry or report CONFLICT)."""


class ProgramCache:
    """The parsed program of one database, for one process."""

    def __init__(self) -> None:
        self.current: Program | None = None
        self.streams = 0  # change streams open on this database in this process
        self.generation = 0
        self._parsed: tuple[Document, Program] | None = None

    @property
    def live(self) -> bool:
        return self.streams > 0

    def invalidate(self) -> None:
        self.generation += 1
        self.current = None

    def stream_opened(self) -> None:
        """The watcher's change stream is open: from now on it reports every program change."""
        self.streams += 1
        self.invalidate()

    def stream_lost(self) -> None:
        self.streams -= 1
        self.invalidate()

    def observe(self, change: Document) -> None:
        """Any change-stream event on the program collection (update, replace, delete, drop)."""
        self.invalidate()

    def parse(self, config: Document) -> Program:
        """Validate ``config`` unless it is exactly the configuration parsed last."""
        parsed = self._parsed
        if parsed is not None and parsed[0] == config:
            return parsed[1]
        program = Program.model_validate(config)
        self._parsed = (config, program)
        return program


_caches: weakref.WeakKeyDictionary[Any, dict[str, ProgramCache]] = weakref.WeakKeyDictionary()


def program_cache(db: Database) -> ProgramCache:
    """The cache of ``db`` (shared by every ``Database`` over the same client and name)."""
    per_client = _caches.setdefault(db.client, {})
    name = db.db.name
    if name not in per_client:
        per_client[name] = ProgramCache()
    return per_client[name]


async def seed_program(db: Database, program: Program = DEFAULT_PROGRAM) -> None:
    """Store the default program unless one exists (first start)."""
    await db.program.update_one(
        {"_id": PROGRAM_ID},
        {"$setOnInsert": {"config": program.model_dump(mode="json"), "version": 1}},
        upsert=True,
    )
    program_cache(db).invalidate()


async def load_program(db: Database, session: Any = None) -> Program:
    cache = program_cache(db)
    if session is None and cache.live and cache.current is not None:
        return cache.current
    generation, live = cache.generation, cache.live
    doc = await db.program.find_one({"_id": PROGRAM_ID}, session=session)
    program = DEFAULT_PROGRAM if doc is None else cache.parse(doc["config"])
    if session is None and live and cache.live and cache.generation == generation:
        cache.current = program
    return program


@dataclass(frozen=True)
class Along:
    """A read that rides along with a transaction's program read (``load_program_along``): the
    documents of ``collection`` matching ``query``. Built by the store module that owns the collection."""

    collection: str
    query: Document


async def load_program_along(db: Database, along: list[Along], session: Any) -> tuple[Program, list[list[Document]]]:
    """In a transaction: the program and, in the same round trip (one ``$lookup`` each), the
    documents of each ``along``. All reads of a transaction see one snapshot, so reading them
    first is reading them when the work would have."""
    pipeline: list[Document] = [{"$match": {"_id": PROGRAM_ID}}]
    pipeline += [
        {"$lookup": {"from": a.collection, "pipeline": [{"$match": a.query}], "as": f"along{i}"}}
        for i, a in enumerate(along)
    ]
    docs = await (await db.program.aggregate(pipeline, session=session)).to_list()
    if not docs:  # never stored: the built-in default, and the reads on their own
        return DEFAULT_PROGRAM, [await db[a.collection].find(a.query, session=session).to_list() for a in along]
    doc = docs[0]
    return program_cache(db).parse(doc["config"]), [doc[f"along{i}"] for i in range(len(along))]


async def load_versioned(db: Database, session: Any = None) -> tuple[Program, int]:
    """The program and its version (0: never stored, the built-in default), read from MongoDB
    (admin edits compare-and-set on the version, so they never answer from the cache)."""
    doc = await db.program.find_one({"_id": PROGRAM_ID}, session=session)
    if doc is None:
        return DEFAULT_PROGRAM, 0
    return program_cache(db).parse(doc["config"]), int(doc.get("version", 0))


async def save_program(db: Database, program: Program) -> Program:
    """Unconditional save (seeding, tests); admin writes use ``replace_program``."""
    await db.program.update_one(
        {"_id": PROGRAM_ID},
        {"$set": {"config": program.model_dump(mode="json")}, "$inc": {"version": 1}},
        upsert=True,
    )
    program_cache(db).invalidate()
    return program


async def replace_program(db: Database, program: Program, *, version: int, session: Any = None) -> int:
    """Save ``program`` if the stored version is still ``version``; returns the new version.

    Raises ``StaleProgram`` when another write got there first.
    """
    config = program.model_dump(mode="json")
    if version == 0:
        result = await db.program.update_one(
            {"_id": PROGRAM_ID},
            {"$setOnInsert": {"config": config, "version": 1}},
            upsert=True,
            session=session,
        )
        if result.upserted_id is None:
            raise StaleProgram
        program_cache(db).invalidate()
        return 1
    result = await db.program.update_one(
        {"_id": PROGRAM_ID, "version": version},
        {"$set": {"config": config}, "$inc": {"version": 1}},
        session=session,
    )
    if result.matched_count != 1:
        raise StaleProgram
    program_cache(db).invalidate()
    return version + 1
