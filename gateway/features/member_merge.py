"""Merging two accounts of one person, and undoing it (issue 14 §1; rules in
gateway/domain/member_merge.py). Each is one transaction with its audit entry; a merge is
idempotent on the caller's key, and a source already merged into the same target answers with
that merge instead of failing."""

from __future__ import annotations

import secrets
from typing import Any

from gateway.core.auth import Principal
from gateway.core.clock import Clock
from gateway.core.errors import DomainError, NotFound
from gateway.domain.admin_audit import AuditAction
from gateway.domain.member_merge import (
    filled_fields,
    later_term,
    merge_refusal,
    merged_tier,
    points_not_returned,
    unmerge_refusal,
)
from gateway.domain.member_search import search_keys
from gateway.domain.member_status import MemberStatus
from gateway.domain.tiers import lifetime_value
from gateway.features.admin_audit import AdminAudit
from gateway.features.member_accounts import MEMBER, reason_of
from gateway.ledger import EntryKind, Idempotency, Ledger, LedgerTx, Memo, Source
from gateway.store import holds as holds_store
from gateway.store import lots as lots_store
from gateway.store import member_merges as store
from gateway.store import members as members_store
from gateway.store.mongo import Database, Document

FIGURES = ("lifetimeSpend", "growth", "purchaseCount")


def refuse(refusal: tuple[str, str] | None, **details: Any) -> None:
    if refusal is not None:
        code, message = refusal
        raise DomainError(message, code=code, **details)


class MemberMerges:
    def __init__(self, db: Database, clock: Clock, ledger: Ledger, audit: AdminAudit) -> None:
        self.db = db
        self.clock = clock
        self.ledger = ledger
        self.audit = audit

    async def merge(self, who: Principal, source_id: str, target_id: str, reason: str, key: str) -> Document:
        why = reason_of(reason)
        idempotency = Idempotency.for_caller(who, key, "mergeMembers", source=source_id, target=target_id)

        async def work(tx: LedgerTx) -> Document:
            source = await tx.member(source_id, merged_ok=True)
            if source.get("mergedInto") == target_id and source.get("mergeId"):
                return {"mergeId": source["mergeId"], "already": True}  # the same merge, asked again
            target = await tx.member(target_id)
            holds = await holds_store.open_holds(tx.db, source_id, session=tx.session)
            refuse(merge_refusal(source, target, source_holds=len(holds)))
            shared = await store.shared_order_ids(tx.db, source_id, target_id, session=tx.session)
            if shared:
                raise DomainError(
                    "Both accounts recorded the same order ids; they cannot be merged",
                    code="INVALID_STATE",
                    orderIds=shared[:20],
                )
            merge_id = "mrg_" + secrets.token_hex(12)
            moved: Document = {}
            for collection in store.MOVED:
                ids = await store.ids_of(tx.db, collection, source_id, session=tx.session)
                await store.reassign(tx.db, collection, ids, target_id, session=tx.session)
                moved[collection] = ids
            lot_ids = await lots_store.ids_of(tx.db, source_id, session=tx.session)
            debt = source.get("debt", 0)
            source_points = {k: source["balances"][k] for k in ("available", "pending")}
            await tx.move_points(
                source_id,
                target_id,
                lot_ids,
                debt=debt,
                memo_out=Memo(EntryKind.MERGE_OUT, f"Merged into {target_id}", Source("MERGE", merge_id)),
                memo_in=Memo(EntryKind.MERGE_IN, f"Merged from {source_id}", Source("MERGE", merge_id)),
            )
            links = await self._move_links(tx, source_id, target_id)
            # profile: figures add up, blanks are filled, the better tier and the later term win
            figures = {name: source.get(name, 0) or 0 for name in FIGURES}
            fill = filled_fields(target, source)
            combined = {name: (target.get(name, 0) or 0) + figures[name] for name in FIGURES}
            value = lifetime_value(tx.program, lifetime_spend=combined["lifetimeSpend"], growth=combined["growth"])
            tier = merged_tier(target["tier"], source["tier"], value, tx.program.tiers)
            term = later_term(target.get("paidMembership"), source.get("paidMembership"))
            if "email" in fill:  # unique: leave the source first
                await store.update_member(tx.db, source_id, {"$set": {"email": None}}, session=tx.session)
            target_set: Document = {**fill, **search_keys(fill), "paidMembership": term}
            if tier != target["tier"]:
                target_set.update(tier=tier, tierSince=tx.now)
                await members_store.record_tier_change(
                    tx.db,
                    target_id,
                    {"fromTier": target["tier"], "toTier": tier, "direction": "UP", "reason": "merge", "at": tx.now},
                    session=tx.session,
                )
            first = source.get("firstPurchaseAt")
            target_update: Document = {"$set": target_set, "$inc": figures}
            if first is not None:
                target_update["$min"] = {"firstPurchaseAt": first}
            await store.update_member(tx.db, target_id, target_update, session=tx.session)
            await store.update_member(
                tx.db,
                source_id,
                {
                    "$set": {
                        "status": str(MemberStatus.MERGED),
                        "mergedInto": target_id,
                        "mergeId": merge_id,
                        "mergedAt": tx.now,
                        **{name: 0 for name in FIGURES},
                    },
                    "$unset": {"rfm": ""},
                },
                session=tx.session,
            )
            record: Document = {
                "_id": merge_id,
                "source": source_id,
                "target": target_id,
                "status": "MERGED",
                "at": tx.now,
                "by": f"{who.role.value}:{who.subject}",
                "reason": why,
                "moved": moved,
                "lots": lot_ids,
                "debt": debt,
                "points": source_points,
                "links": links,
                "figures": figures,
                "filled": sorted(fill),
                "sourceEmail": source.get("email") if "email" in fill else None,
                "tiers": {"source": source["tier"], "target": target["tier"], "after": tier},
                "terms": {"source": source.get("paidMembership"), "target": target.get("paidMembership")},
            }
            await store.insert(tx.db, record, session=tx.session)
            details = {
                "source": source_id,
                "target": target_id,
                "mergeId": merge_id,
                "points": source_points,
                "moved": {name: len(ids) for name, ids in moved.items()},
                "links": links,
                "tier": tier,
            }
            await self.audit.record(
                who, AuditAction.MEMBER_MERGE, MEMBER, target_id, details, reason=why, session=tx.session
            )
            return {"mergeId": merge_id, "already": False}

        return await self.ledger.transact(work, idempotency=idempotency)

    async def _move_links(self, tx: LedgerTx, source_id: str, target_id: str) -> Document:
        """A partner linked only to the source follows it; one linked on both sides keeps the target's
        link and the source's ref is unlinked. Returns what happened, per partner."""
        targets = {link["partnerId"] for link in await store.links_of(tx.db, target_id, session=tx.session)}
        moved, dropped = [], []
        for link in await store.links_of(tx.db, source_id, session=tx.session):
            await store.delete_link(tx.db, link["_id"], session=tx.session)
            if link["partnerId"] in targets:
                dropped.append(link)
                continue
            await store.insert_link(
                tx.db, {**link, "_id": f"{link['partnerId']}:{target_id}", "memberId": target_id}, session=tx.session
            )
            moved.append(link)
        return {"moved": moved, "dropped": dropped}

    async def unmerge(self, who: Principal, merge_id: str, reason: str) -> Document:
        why = reason_of(reason)

        async def work(tx: LedgerTx) -> Document:
            record = await store.find(tx.db, merge_id, session=tx.session)
            if record is None:
                raise NotFound(f"No merge {merge_id}", code="NOT_FOUND")
            if record["status"] != "MERGED":
                raise DomainError("This merge was already undone", code="INVALID_STATE")
            source_id, target_id = record["source"], record["target"]
            await tx.member(source_id, merged_ok=True)
            target = await tx.member(target_id)
            holds = await holds_store.open_holds(tx.db, target_id, session=tx.session)
            refuse(unmerge_refusal(target, target_holds=len(holds)))
            for collection, ids in record["moved"].items():
                await store.reassign(tx.db, collection, ids, source_id, session=tx.session)
            debt_back = min(record["debt"], target.get("debt", 0))
            out_entry, _ = await tx.move_points(
                target_id,
                source_id,
                record["lots"],
                debt=debt_back,
                memo_out=Memo(EntryKind.MERGE_OUT, f"Merge with {source_id} undone", Source("UNMERGE", merge_id)),
                memo_in=Memo(EntryKind.MERGE_IN, f"Merge into {target_id} undone", Source("UNMERGE", merge_id)),
            )
            returned = -out_entry["points"]
            moved_in = record["points"]["available"] + record["points"]["pending"]
            await self._restore_links(tx, record, source_id, target_id)
            figures = record["figures"]
            target_set: Document = {name: None for name in record["filled"]}
            target_set.update(search_keys({k: None for k in record["filled"] if k == "phone"}))
            target_set["paidMembership"] = record["terms"]["target"]
            tiers = record["tiers"]
            if target["tier"] == tiers["after"] and tiers["after"] != tiers["target"]:
                target_set.update(tier=tiers["target"], tierSince=tx.now)
                await members_store.record_tier_change(
                    tx.db,
                    target_id,
                    {
                        "fromTier": tiers["after"],
                        "toTier": tiers["target"],
                        "direction": "DOWN",
                        "reason": "unmerge",
                        "at": tx.now,
                    },
                    session=tx.session,
                )
            await store.update_member(
                tx.db, target_id, {"$set": target_set, "$inc": {k: -v for k, v in figures.items()}}, session=tx.session
            )
            source_set: Document = {"status": str(MemberStatus.ACTIVE), **figures}
            if record.get("sourceEmail"):
                source_set["email"] = record["sourceEmail"]
            await store.update_member(
                tx.db,
                source_id,
                {"$set": source_set, "$unset": {"mergedInto": "", "mergeId": "", "mergedAt": ""}},
                session=tx.session,
            )
            not_returned = points_not_returned(moved_in, returned)
            await store.mark_reversed(
                tx.db,
                merge_id,
                {
                    "reversedAt": tx.now,
                    "reversedBy": f"{who.role.value}:{who.subject}",
                    "returned": returned,
                    "notReturned": not_returned,
                },
                session=tx.session,
            )
            details = {"mergeId": merge_id, "source": source_id, "returned": returned, "notReturned": not_returned}
            await self.audit.record(
                who, AuditAction.MEMBER_UNMERGE, MEMBER, target_id, details, reason=why, session=tx.session
            )
            return {"mergeId": merge_id, "returned": returned, "notReturned": not_returned}

        return await self.ledger.transact(work)

    async def _restore_links(self, tx: LedgerTx, record: Document, source_id: str, target_id: str) -> None:
        """The source's partner links come back: moved ones leave the target (if still there),
        dropped ones are linked again (unless the ref was linked elsewhere since)."""
        for link in record["links"]["moved"]:
            await store.delete_link(tx.db, f"{link['partnerId']}:{target_id}", session=tx.session)
        for link in record["links"]["moved"] + record["links"]["dropped"]:
            if not await store.ref_taken(tx.db, link["partnerId"], link["partnerMemberRef"], session=tx.session):
                await store.insert_link(tx.db, link, session=tx.session)

    async def get(self, merge_id: str) -> Document | None:
        return await store.find(self.db, merge_id)

    async def of_member(self, member_id: str) -> list[Document]:
        return await store.of_member(self.db, member_id)
