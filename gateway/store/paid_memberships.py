"""Paid-membership terms, kept on the member document (``members.paidMembership``) with their history."""

from __future__ import annotations

from typing import Any

from gateway.store.mongo import Database, Document


async def save_term(db: Database, member_id: str, term: Document, event: Document, session: Any = None) -> None:
    """Set the member's term, drop the pre-term flag, and append ``event`` to the history."""
    await db["members"].update_one(
        {"_id": member_id},
        {
            "$set": {"paidMembership": term},
            "$unset": {"paidMember": "", "paidMemberSince": ""},
            "$push": {"paidMembershipHistory": event},
        },
        session=session,
    )
