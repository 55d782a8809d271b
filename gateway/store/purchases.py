"""Purchases repository: the recorded orders of members."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId

from gateway.core.errors import BadInput
from gateway.store.mongo import Database, Document


async def purchases_page(db: Database, member_id: str, *, before: str | None, size: int) -> list[Document]:
    """Up to ``size`` orders of one member, newest first, older than the ``before`` position."""
    query: Document = {"memberId": member_id}
    if before is not None:
        try:
            query["_id"] = {"$lt": ObjectId(before)}
        except InvalidId:
            raise BadInput("after is not a valid cursor", field="after") from None
    return await db["purchases"].find(query).sort("_id", -1).limit(size).to_list()
