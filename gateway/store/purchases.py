"""Purchases repository: the recorded orders of members."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.errors import DuplicateKeyError

from gateway.core.errors import BadInput
from gateway.store.mongo import Database, Document

PURCHASES = "purchases"


async def exists(db: Database, member_id: str, order_id: str, session: Any = None) -> bool:
    return await db[PURCHASES].count_documents({"memberId": member_id, "orderId": order_id}, session=session) > 0


async def any_of(db: Database, member_id: str) -> bool:
    """Whether the member has any purchase recorded."""
    return await db[PURCHASES].count_documents({"memberId": member_id}, limit=1) > 0


async def for_order(db: Database, member_id: str, order_id: str, session: Any = None) -> Document | None:
    return await db[PURCHASES].find_one({"memberId": member_id, "orderId": order_id}, session=session)


async def insert(db: Database, purchase: Document, session: Any = None) -> bool:
    """False when the member already has an order with this id."""
    try:
        await db[PURCHASES].insert_one(purchase, session=session)
    except DuplicateKeyError:
        return False
    return True


async def add_refund(
    db: Database,
    purchase_id: Any,
    amount: int,
    points: int,
    growth: int,
    *,
    line_refunds: list[int] | None = None,
    bonus_taken_back: dict[int, int] | None = None,
    session: Any = None,
) -> None:
    """A refund of ``amount`` fen took back ``points`` and ``growth`` of this order; per line, the
    fen it refunded, and per campaign on the order (by position), the bonus it took back."""
    inc: dict[str, int] = {"refunded": amount, "pointsTakenBack": points, "growthTakenBack": growth}
    for index, fen in enumerate(line_refunds or []):
        if fen:
            inc[f"lines.{index}.refunded"] = fen
    for index, taken in (bonus_taken_back or {}).items():
        inc[f"campaigns.{index}.takenBack"] = taken
    await db[PURCHASES].update_one({"_id": purchase_id}, {"$inc": inc}, session=session)


async def mark_referral_revoked(db: Database, purchase_id: Any, entry_id: Any, session: Any = None) -> None:
    await db[PURCHASES].update_one(
        {"_id": purchase_id},
        {"$set": {"referral.revoked": True, "referral.revokeEntryId": entry_id}},
        session=session,
    )


async def purchases_page(db: Database, member_id: str, *, before: str | None, size: int) -> list[Document]:
    """Up to ``size`` orders of one member, newest first, older than the ``before`` position."""
    query: Document = {"memberId": member_id}
    if before is not None:
        try:
            query["_id"] = {"$lt": ObjectId(before)}
        except InvalidId:
            raise BadInput("after is not a valid cursor", field="after") from None
    return await db[PURCHASES].find(query).sort("_id", -1).limit(size).to_list()
