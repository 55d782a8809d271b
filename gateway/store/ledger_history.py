"""Reads of a member's ledger history for clients (the ledger itself writes in ``gateway.ledger``)."""

from __future__ import annotations

from gateway.store.mongo import Database, Document


async def entries_page(db: Database, member_id: str, *, before_seq: int | None, limit: int) -> list[Document]:
    """Up to ``limit`` entries of one member, newest first, below position ``before_seq``."""
    query: Document = {"memberId": member_id}
    if before_seq is not None:
        query["seq"] = {"$lt": before_seq}
    return await db.ledger.find(query).sort("seq", -1).limit(limit).to_list()
