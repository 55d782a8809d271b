"""Redemptions repository: points-mall orders (``redemptions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.store.mongo import Database, Document

REDEMPTIONS = "redemptions"
CANCELLED = "CANCELLED"


async def orders_since(
    db: Database, *, member_ids: list[str], gift_ids: list[str], since: datetime, session: Any = None
) -> list[Document]:
    """Orders of these members for these gifts placed at or after ``since`` that count against
    limits (everything but cancelled orders): memberId, giftId, quantity, createdAt."""
    cursor = db[REDEMPTIONS].find(
        {
            "memberId": {"$in": member_ids},
            "giftId": {"$in": gift_ids},
            "status": {"$ne": CANCELLED},
            "createdAt": {"$gte": since},
        },
        {"memberId": 1, "giftId": 1, "quantity": 1, "createdAt": 1},
        session=session,
    )
    return await cursor.to_list()
