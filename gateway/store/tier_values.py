"""What members' tiers are judged on inside a rolling window: sums over purchases or growth events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.store.mongo import Database, Document


async def spend_since(db: Database, member_ids: list[str], since: datetime, session: Any = None) -> dict[str, int]:
    """Net spend (amount less refunds) paid after ``since``, per member; one aggregate for all."""
    return await _sums(db, "purchases", "paidAt", {"$subtract": ["$amount", "$refunded"]}, member_ids, since, session)


async def growth_since(db: Database, member_ids: list[str], since: datetime, session: Any = None) -> dict[str, int]:
    """Growth value earned after ``since``, per member; one aggregate for all."""
    return await _sums(db, "growth_events", "at", "$points", member_ids, since, session)


async def _sums(
    db: Database, collection: str, at: str, value: Any, member_ids: list[str], since: datetime, session: Any
) -> dict[str, int]:
    pipeline: list[Document] = [
        {"$match": {"memberId": {"$in": member_ids}, at: {"$gt": since}}},
        {"$group": {"_id": "$memberId", "v": {"$sum": value}}},
    ]
    rows = await (await db[collection].aggregate(pipeline, session=session)).to_list()
    found = {row["_id"]: row["v"] for row in rows}
    return {member_id: found.get(member_id, 0) for member_id in member_ids}
