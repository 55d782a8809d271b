"""Loading and saving the program configuration document.

The document carries a ``version`` that every save increments. Admin writes save
with ``replace_program``, which only succeeds while the version is still the one
they read (compare-and-set), so two admins editing at once never lose a change.
"""

from __future__ import annotations

from typing import Any

from gateway.domain.program import DEFAULT_PROGRAM, Program
from gateway.store.mongo import Database

PROGRAM_ID = "current"


class StaleProgram(Exception):
    """The program changed since it was read (internal: callers retry or report CONFLICT)."""


async def seed_program(db: Database, program: Program = DEFAULT_PROGRAM) -> None:
    """Store the default program unless one exists (first start)."""
    await db.program.update_one(
        {"_id": PROGRAM_ID},
        {"$setOnInsert": {"config": program.model_dump(mode="json"), "version": 1}},
        upsert=True,
    )


async def load_program(db: Database, session: Any = None) -> Program:
    return (await load_versioned(db, session))[0]


async def load_versioned(db: Database, session: Any = None) -> tuple[Program, int]:
    """The program and its version (0: never stored, the built-in default)."""
    doc = await db.program.find_one({"_id": PROGRAM_ID}, session=session)
    if doc is None:
        return DEFAULT_PROGRAM, 0
    return Program.model_validate(doc["config"]), int(doc.get("version", 0))


async def save_program(db: Database, program: Program) -> Program:
    """Unconditional save (seeding, tests); admin writes use ``replace_program``."""
    await db.program.update_one(
        {"_id": PROGRAM_ID},
        {"$set": {"config": program.model_dump(mode="json")}, "$inc": {"version": 1}},
        upsert=True,
    )
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
        return 1
    result = await db.program.update_one(
        {"_id": PROGRAM_ID, "version": version},
        {"$set": {"config": config}, "$inc": {"version": 1}},
        session=session,
    )
    if result.matched_count != 1:
        raise StaleProgram
    return version + 1
