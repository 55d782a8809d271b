"""Personal data of one member across collections (PIPL export and erasure, issue 14 §1).

``SECTIONS`` is the one list of what "everything about a member" is: each export section and the
collection and field that hold the member's id. ``tests/api/test_member_privacy.py`` fails when a
collection holds documents with a member's id and is neither here nor in ``NOT_EXPORTED`` (with the
reason), so a new feature that stores member data cannot be forgotten by the export.
"""

from __future__ import annotations

from typing import Any

from gateway.store.mongo import Database, Document

# section name -> (collection, the field holding the member id)
SECTIONS: dict[str, tuple[str, str]] = {
    "ledger": ("ledger", "memberId"),
    "lots": ("lots", "memberId"),
    "holds": ("holds", "memberId"),
    "purchases": ("purchases", "memberId"),
    "checkoutDeductions": ("deductions", "memberId"),
    "redemptions": ("redemptions", "memberId"),
    "coupons": ("coupon_codes", "memberId"),  # codes the member holds: status, dates, hint (never sealed or hashed)
    "partnerLinks": ("partner_links", "memberId"),
    "partnerLinkEvents": ("partner_link_events", "memberId"),
    "partnerOperations": ("partner_operations", "memberId"),
    "tierChanges": ("tier_changes", "memberId"),
    "growthEvents": ("growth_events", "memberId"),
    "benefitUsages": ("benefit_usages", "memberId"),
    "notifications": ("notifications", "memberId"),
    "segmentGrants": ("segment_grant_targets", "memberId"),  # marketing segments the member was granted in
    "staffActions": ("adminAudit", "targetId"),
    "merges": ("member_merges", "source"),  # and "target": the merges the member took part in
}
# collections that may hold a member id but are not exported, and why
NOT_EXPORTED: dict[str, str] = {
    "members": "the profile itself: the export's `member` section",
    "idempotency": "technical replay records of requests, copies of results already exported",
    "partner_link_codes": "hashed one-time codes that expire within minutes",
    "rate_limits": "counters of requests, not about the member",
}
# what each section's documents are stripped of before export (internal or other people's data)
HIDDEN_FIELDS: dict[str, tuple[str, ...]] = {
    "staffActions": ("actor", "hash", "prevHash", "requestId", "pending"),
    "notifications": ("targets", "claimedUntil"),
    "coupons": ("sealed", "codeHash"),
}
MEMBER_HIDDEN = ("search", "lockVersion", "nextDueAt")


async def member_sections(db: Database, member_id: str) -> dict[str, list[Document]]:
    """Every section's documents about the member (``staffActions``: entries whose target is them)."""
    out: dict[str, list[Document]] = {}
    for section, (collection, field) in SECTIONS.items():
        query: Document = {field: member_id}
        if section == "staffActions":
            query["targetKind"] = "member"
        if section == "merges":
            query = {"$or": [{"source": member_id}, {"target": member_id}]}
        hidden = {name: 0 for name in HIDDEN_FIELDS.get(section, ())}
        out[section] = await db[collection].find(query, hidden or None).sort("_id", 1).to_list()
    return out


async def referred_count(db: Database, member_id: str) -> int:
    """How many members this member referred (their ids are other people's data: not exported)."""
    return await db["members"].count_documents({"referrerId": member_id})


async def scrub_member_copies(db: Database, member_id: str, session: Any = None) -> dict[str, int]:
    """Erasure outside the profile: the copies of contact details kept with notifications, the
    partner's own customer refs (links removed, refs blanked on link events and operations) and
    unused link codes. Returns how many documents each step changed."""
    changed: dict[str, int] = {}
    result = await db["notifications"].update_many(
        {"memberId": member_id},
        {"$set": {"member.displayName": None, "member.email": None, "member.phone": None}},
        session=session,
    )
    changed["notifications"] = result.modified_count
    removed = await db["partner_links"].delete_many({"memberId": member_id}, session=session)
    changed["partnerLinks"] = removed.deleted_count
    result = await db["partner_link_events"].update_many(
        {"memberId": member_id}, {"$set": {"partnerMemberRef": None, "previousPartnerMemberRef": None}}, session=session
    )
    changed["partnerLinkEvents"] = result.modified_count
    result = await db["partner_operations"].update_many(
        {"memberId": member_id, "memberRef": {"$ne": None}}, {"$set": {"memberRef": None}}, session=session
    )
    changed["partnerOperations"] = result.modified_count
    removed = await db["partner_link_codes"].delete_many({"memberId": member_id}, session=session)
    changed["partnerLinkCodes"] = removed.deleted_count
    return changed
