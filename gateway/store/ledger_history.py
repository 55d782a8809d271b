"""Reads of a member's ledger history for clients (the ledger itself writes in ``gateway.ledger``)."""

from __future__ import annotations

from gateway.domain.ledger_view import LedgerFilter
from gateway.store.mongo import Database, Document


def filter_query(member_id: str, ledger_filter: LedgerFilter) -> Document:
    """One member's entries matching the filter. Served by the ``memberId, seq`` index: the other
    criteria filter that member's entries (no extra index on the ledger's hot write path)."""
    query: Document = {"memberId": member_id}
    f = ledger_filter
    if f.kinds:
        query["kind"] = {"$in": list(f.kinds)}
    if f.source_type is not None:
        query["source.type"] = f.source_type
    if f.source_id is not None:
        query["source.id"] = f.source_id
    if f.partner_id is not None:
        query["source.partnerId"] = f.partner_id
    created: Document = {}
    if f.since is not None:
        created["$gte"] = f.since
    if f.until is not None:
        created["$lt"] = f.until
    if created:
        query["createdAt"] = created
    return query


async def entries_page(
    db: Database,
    member_id: str,
    *,
    before_seq: int | None,
    limit: int,
    ledger_filter: LedgerFilter | None = None,
) -> list[Document]:
    """Up to ``limit`` entries of one member, newest first, below position ``before_seq``."""
    query = filter_query(member_id, ledger_filter or LedgerFilter())
    if before_seq is not None:
        query["seq"] = {"$lt": before_seq}
    return await db.ledger.find(query).sort("seq", -1).limit(limit).to_list()
