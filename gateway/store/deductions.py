"""Deductions repository: points used at checkout (``deductions``), one record per member and order.

A record follows its hold (gateway/domain/holds.py): HELD, then POSTED by the
order's purchase or VOIDED by a cancel or the timeout. A voided record is reused
when the member checks out the same order again; the holds it replaced are kept
in ``voidedHoldIds``. Records from before holds existed have no ``status``: they
were spent at once and count as POSTED.
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import DuplicateKeyError

from gateway.store.mongo import Database, Document

DEDUCTIONS = "deductions"


async def for_order(db: Database, member_id: str, order_id: str, session: Any = None) -> Document | None:
    return await db[DEDUCTIONS].find_one({"memberId": member_id, "orderId": order_id}, session=session)


async def held_for_order(db: Database, member_id: str, order_id: str, session: Any = None) -> Document | None:
    return await db[DEDUCTIONS].find_one(
        {"memberId": member_id, "orderId": order_id, "status": "HELD"}, session=session
    )


async def for_hold(db: Database, hold_id: Any, session: Any = None) -> Document | None:
    return await db[DEDUCTIONS].find_one({"holdId": hold_id}, session=session)


async def insert(db: Database, doc: Document, session: Any = None) -> bool:
    """False when the order already has a record (a concurrent checkout won)."""
    try:
        await db[DEDUCTIONS].insert_one(doc, session=session)
    except DuplicateKeyError:
        return False
    return True


async def reopen(db: Database, voided: Document, doc: Document, session: Any = None) -> bool:
    """Reuse a voided record for a new hold on the same order; False if it is no longer voided."""
    changed = await db[DEDUCTIONS].update_one(
        {"_id": voided["_id"], "status": "VOIDED"},
        {"$set": doc, "$push": {"voidedHoldIds": voided["holdId"]}},
        session=session,
    )
    return changed.modified_count == 1


async def settle(db: Database, deduction: Document, status: str, fields: Document, session: Any = None) -> None:
    """Record the hold's outcome (POSTED or VOIDED) on the record that still points at that hold."""
    await db[DEDUCTIONS].update_one(
        {"_id": deduction["_id"], "holdId": deduction["holdId"], "status": "HELD"},
        {"$set": {"status": status, **fields}},
        session=session,
    )
