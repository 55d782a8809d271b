"""Benefit usages (``benefit_usages``): one record per use of a quota benefit, counted per period."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.store.mongo import Database

BENEFIT_USAGES = "benefit_usages"


async def count(db: Database, member_id: str, code: str, period: str, session: Any = None) -> int:
    """Uses of benefit ``code`` by the member in ``period`` (a calendar period key)."""
    return await db[BENEFIT_USAGES].count_documents(
        {"memberId": member_id, "code": code, "period": period}, session=session
    )


async def record(
    db: Database, member_id: str, code: str, period: str, tier: str, at: datetime, session: Any = None
) -> None:
    await db[BENEFIT_USAGES].insert_one(
        {"memberId": member_id, "code": code, "period": period, "tier": tier, "at": at}, session=session
    )
