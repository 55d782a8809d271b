"""Account merges (issue 14 §1): the merge records (``member_merges``) and the moves of a member's
documents from one account to the other. The ledger moves the points (gateway/ledger/posting.py)."""

from __future__ import annotations

from typing import Any

from gateway.store.mongo import Database, Document

MERGES = "member_merges"
MEMBERS = "members"
LINKS = "partner_links"
# documents that follow their member into the merged account (and back at the undoing)
MOVED: tuple[str, ...] = (
    "redemptions",
    "purchases",
    "deductions",
    "partner_operations",
    "benefit_usages",
    "growth_events",
    "coupon_codes",  # the codes the member holds: markCouponUsed names the surviving account
)
KEYED_BY_ORDER: tuple[str, ...] = ("purchases", "deductions")  # unique (memberId, orderId)


async def ids_of(db: Database, collection: str, member_id: str, session: Any = None) -> list[Any]:
    return [d["_id"] async for d in db[collection].find({"memberId": member_id}, {"_id": 1}, session=session)]


async def reassign(db: Database, collection: str, ids: list[Any], member_id: str, session: Any = None) -> None:
    if ids:
        await db[collection].update_many({"_id": {"$in": ids}}, {"$set": {"memberId": member_id}}, session=session)


async def shared_order_ids(db: Database, source: str, target: str, session: Any = None) -> list[str]:
    """Order ids both accounts recorded (a purchase or a deduction): they cannot live on one account."""
    shared: set[str] = set()
    for collection in KEYED_BY_ORDER:
        mine = {d["orderId"] async for d in db[collection].find({"memberId": source}, {"orderId": 1}, session=session)}
        if mine:
            async for d in db[collection].find(
                {"memberId": target, "orderId": {"$in": list(mine)}}, {"orderId": 1}, session=session
            ):
                shared.add(d["orderId"])
    return sorted(shared)


async def links_of(db: Database, member_id: str, session: Any = None) -> list[Document]:
    return await db[LINKS].find({"memberId": member_id}, session=session).to_list()


async def delete_link(db: Database, link_id: str, session: Any = None) -> None:
    await db[LINKS].delete_one({"_id": link_id}, session=session)


async def insert_link(db: Database, link: Document, session: Any = None) -> None:
    await db[LINKS].insert_one(link, session=session)


async def update_member(db: Database, member_id: str, update: Document, session: Any = None) -> None:
    await db[MEMBERS].update_one({"_id": member_id}, update, session=session)


async def insert(db: Database, record: Document, session: Any = None) -> None:
    await db[MERGES].insert_one(record, session=session)


async def find(db: Database, merge_id: str, session: Any = None) -> Document | None:
    return await db[MERGES].find_one({"_id": merge_id}, session=session)


async def mark_reversed(db: Database, merge_id: str, fields: Document, session: Any = None) -> bool:
    result = await db[MERGES].update_one(
        {"_id": merge_id, "status": "MERGED"}, {"$set": {"status": "REVERSED", **fields}}, session=session
    )
    return result.modified_count == 1


async def of_member(db: Database, member_id: str) -> list[Document]:
    """The merges this member took part in, newest first."""
    query = {"$or": [{"source": member_id}, {"target": member_id}]}
    return await db[MERGES].find(query).sort("at", -1).to_list()


async def ref_taken(db: Database, partner_id: str, ref: str, session: Any = None) -> bool:
    return await db[LINKS].count_documents({"partnerId": partner_id, "partnerMemberRef": ref}, session=session) > 0
