"""Partners repository: partner configuration, member links, operations, daily usage."""

from __future__ import annotations

from gateway.store.mongo import Database

PARTNERS = "partners"


async def remember_legacy_rate(db: Database, partner_id: str) -> None:
    """Before a partner's first settlement-rate change, keep the rate its unrecorded operations were made at."""
    await db[PARTNERS].update_one(
        {"_id": partner_id, "legacyMilliFenPerPoint": {"$exists": False}},
        [{"$set": {"legacyMilliFenPerPoint": {"$ifNull": ["$settlementMilliFenPerPoint", 0]}}}],
    )
