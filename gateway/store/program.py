"""Loading and saving the program configuration document."""

from __future__ import annotations

from typing import Any

from gateway.domain.program import DEFAULT_PROGRAM, Program
from gateway.store.mongo import Database

PROGRAM_ID = "current"


async def seed_program(db: Database, program: Program = DEFAULT_PROGRAM) -> None:
    """Store the default program unless one exists (first start)."""
    await db.program.update_one(
        {"_id": PROGRAM_ID},
        {"$setOnInsert": {"config": program.model_dump(mode="json"), "version": 1}},
        upsert=True,
    )


async def load_program(db: Database, session: Any = None) -> Program:
    doc = await db.program.find_one({"_id": PROGRAM_ID}, session=session)
    if doc is None:
        return DEFAULT_PROGRAM
    return Program.model_validate(doc["config"])


async def save_program(db: Database, program: Program) -> Program:
    await db.program.update_one(
        {"_id": PROGRAM_ID},
        {"$set": {"config": program.model_dump(mode="json")}, "$inc": {"version": 1}},
        upsert=True,
    )
    return program
