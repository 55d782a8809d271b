"""Campaigns: time-boxed earning boosts by category or SKU, with a points budget.

Operators create, change and cancel campaigns (``campaigns:manage``; each change is audited in
the same transaction). A purchase asks ``earn_campaign_bonuses`` inside its ledger transaction:
the boosts running when the order was paid give their bonus as one ``CAMPAIGN`` entry per
campaign (source ``CAMPAIGN``/id, pending like the purchase's own points), and a budgeted
campaign's ``spentPoints`` grows in the same transaction, under a condition on what it had
given, so concurrent purchases can never spend more than its budget: two transactions that
read the same ``spentPoints`` meet as a write conflict and the later one runs again on the
new value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bson import ObjectId

from gateway.core.auth import Principal
from gateway.core.clock import Clock, as_utc
from gateway.core.errors import BadInput, Conflict, DomainError, NotFound, quote
from gateway.domain import campaigns as rules
from gateway.domain.admin_audit import AuditAction
from gateway.domain.earning import LineItem, allocate, line_bonuses, within_budget
from gateway.features.admin_audit import AdminAudit
from gateway.ledger import EntryKind, LedgerTx, Memo, Source
from gateway.store import campaigns as store
from gateway.store.mongo import Database, Document


def spec_of(doc: Document) -> rules.CampaignSpec:
    return rules.CampaignSpec(
        name=doc["name"],
        description=doc.get("description", ""),
        starts_at=as_utc(doc["startsAt"]),
        ends_at=as_utc(doc["endsAt"]),
        budget_points=doc.get("budgetPoints"),
        member_cap_points=doc.get("memberCapPoints"),
        boosts=tuple(
            rules.BoostSpec(b["multiplierPercent"], tuple(b.get("categories", ())), tuple(b.get("skus", ())))
            for b in doc["boosts"]
        ),
    )


def spec_fields(spec: rules.CampaignSpec) -> Document:
    return {
        "name": spec.name.strip(),
        "description": spec.description,
        "startsAt": spec.starts_at,
        "endsAt": spec.ends_at,
        "budgetPoints": spec.budget_points,
        "memberCapPoints": spec.member_cap_points,
        "boosts": [
            {"multiplierPercent": b.multiplier_percent, "categories": list(b.categories), "skus": list(b.skus)}
            for b in spec.boosts
        ],
    }


def status_of(doc: Document, now: datetime) -> rules.CampaignStatus:
    return rules.status(
        now,
        as_utc(doc["startsAt"]),
        as_utc(doc["endsAt"]),
        budget_points=doc.get("budgetPoints"),
        spent_points=doc.get("spentPoints", 0),
        cancelled=doc.get("cancelledAt") is not None,
    )


def _checked(spec: rules.CampaignSpec) -> rules.CampaignSpec:
    spec = replace(
        spec,
        starts_at=as_utc(spec.starts_at),
        ends_at=as_utc(spec.ends_at),
        boosts=tuple(
            rules.BoostSpec(b.multiplier_percent, tuple(dict.fromkeys(b.categories)), tuple(dict.fromkeys(b.skus)))
            for b in spec.boosts
        ),
    )
    problem = rules.spec_problem(spec)
    if problem is not None:
        raise BadInput(str(problem), field=problem.field)
    return spec


def campaign_not_found(campaign_id: str) -> NotFound:
    return NotFound(f"Campaign {quote(campaign_id)} not found", campaignId=campaign_id)


class Campaigns:
    def __init__(self, db: Database, clock: Clock, audit: AdminAudit) -> None:
        self.db = db
        self.clock = clock
        self.audit = audit

    async def get(self, campaign_id: str) -> Document:
        doc = await store.find(self.db, campaign_id)
        if doc is None:
            raise campaign_not_found(campaign_id)
        return doc

    async def page(self, *, after: str | None, size: int) -> list[Document]:
        return await store.page(self.db, before=after, size=size)

    async def stats(self, campaign_id: str) -> Document:
        return await store.stats(self.db, campaign_id)

    async def create(self, principal: Principal, spec: rules.CampaignSpec) -> Document:
        spec = _checked(spec)
        now = self.clock.now()
        if spec.starts_at < now - rules.CLOCK_SKEW:
            raise BadInput("startsAt cannot be in the past", field="startsAt")
        doc: Document = {
            "_id": ObjectId(),
            **spec_fields(spec),
            "spentPoints": 0,
            "exhaustedAt": None,
            "cancelledAt": None,
            "version": 1,
            "createdAt": now,
            "createdBy": principal.subject,
        }

        async def work(session: Any) -> None:
            await store.insert(self.db, doc, session=session)
            await self.audit.record(
                principal,
                AuditAction.CAMPAIGN_CHANGE,
                "campaign",
                str(doc["_id"]),
                {"event": "created", **spec_fields(spec)},
                session=session,
            )

        await self.db.transaction(work)
        return doc

    async def update(
        self, principal: Principal, campaign_id: str, spec: rules.CampaignSpec, *, expected_version: int | None
    ) -> Document:
        spec = _checked(spec)

        async def work(session: Any) -> Document:
            now = self.clock.now()
            doc = await store.find(self.db, campaign_id, session=session)
            if doc is None:
                raise campaign_not_found(campaign_id)
            if expected_version is not None and expected_version != doc["version"]:
                raise Conflict(
                    f"The campaign changed (version {doc['version']}, you edited version {expected_version})",
                    currentVersion=doc["version"],
                )
            if doc.get("cancelledAt") is not None or now >= as_utc(doc["endsAt"]):
                raise DomainError("A cancelled or ended campaign cannot change", code="INVALID_STATE")
            problem = rules.change_problem(spec_of(doc), doc.get("spentPoints", 0), spec, now)
            if problem is not None:
                raise BadInput(str(problem), field=problem.field)
            fields = spec_fields(spec)
            budget = spec.budget_points
            fields["exhaustedAt"] = (
                (doc.get("exhaustedAt") or now) if budget is not None and doc["spentPoints"] >= budget else None
            )
            if not await store.replace_spec(self.db, doc["_id"], doc["version"], fields, session=session):
                raise Conflict("The campaign changed meanwhile; reload and retry", currentVersion=doc["version"] + 1)
            before = spec_fields(spec_of(doc))
            changed = {k: {"from": before[k], "to": v} for k, v in spec_fields(spec).items() if before[k] != v}
            await self.audit.record(
                principal,
                AuditAction.CAMPAIGN_CHANGE,
                "campaign",
                campaign_id,
                {"event": "updated", "changes": changed},
                session=session,
            )
            return {**doc, **fields, "version": doc["version"] + 1}

        return await self.db.transaction(work)

    async def cancel(self, principal: Principal, campaign_id: str, reason: str) -> Document:
        """Stop a campaign now: no purchase earns from it any more (what it gave stays)."""
        reason = reason.strip()
        if not 1 <= len(reason) <= 200:
            raise BadInput("reason must be 1 to 200 characters", field="reason")

        async def work(session: Any) -> Document:
            now = self.clock.now()
            doc = await store.find(self.db, campaign_id, session=session)
            if doc is None:
                raise campaign_not_found(campaign_id)
            if doc.get("cancelledAt") is not None:
                raise DomainError("The campaign is already cancelled", code="INVALID_STATE")
            if now >= as_utc(doc["endsAt"]):
                raise DomainError("The campaign has already ended", code="INVALID_STATE")
            await store.cancel(self.db, doc["_id"], now, principal.subject, reason, session=session)
            await self.audit.record(
                principal,
                AuditAction.CAMPAIGN_CHANGE,
                "campaign",
                campaign_id,
                {"event": "cancelled", "spentPoints": doc.get("spentPoints", 0)},
                reason=reason,
                session=session,
            )
            return {**doc, "cancelledAt": now, "cancelledBy": principal.subject, "cancelReason": reason}

        return await self.db.transaction(work)


# --- earning: inside the purchase's ledger transaction ----------------------------------------


@dataclass(frozen=True)
class CampaignEarning:
    """What campaigns gave one order: per line (campaign id, bonus) and per campaign (entry)."""

    line_bonus: list[tuple[str | None, int]]
    given: list[Document]  # {campaignId, name, points, requested, entryId, lotIds}

    @property
    def points(self) -> int:
        return sum(g["points"] for g in self.given)


async def earn_campaign_bonuses(
    tx: LedgerTx,
    member_id: str,
    order_id: str,
    lines: Sequence[LineItem],
    paid_at: datetime,
    available_at: datetime,
) -> CampaignEarning:
    """Give the bonuses of the campaigns running at ``paid_at`` to the order's lines, within each
    campaign's budget and per-member cap (docs/campaigns.md)."""
    docs = {str(d["_id"]): d for d in await store.running_at(tx.db, paid_at, session=tx.session)}
    if not docs:
        return CampaignEarning([(None, 0)] * len(lines), [])
    boosts = rules.usable(
        [b for cid, d in docs.items() for b in rules.boosts_of(cid, spec_of(d))],
        {cid: (d.get("budgetPoints"), d.get("spentPoints", 0)) for cid, d in docs.items()},
        set(),
    )
    wanted = line_bonuses(lines, boosts, paid_at, tx.program.earning)
    by_campaign: dict[str, list[int]] = defaultdict(list)
    for index, bonus in enumerate(wanted):
        if bonus.campaign_id is not None and bonus.points > 0:
            by_campaign[bonus.campaign_id].append(index)
    line_bonus: list[tuple[str | None, int]] = [(None, 0)] * len(lines)
    given: list[Document] = []
    capped_ids = [cid for cid in by_campaign if docs[cid].get("memberCapPoints") is not None]
    earned = await store.member_earned(tx.db, member_id, capped_ids, session=tx.session) if capped_ids else {}
    for cid in sorted(by_campaign):
        doc = docs[cid]
        indexes = by_campaign[cid]
        requested = sum(wanted[i].points for i in indexes)
        budget, spent = doc.get("budgetPoints"), doc.get("spentPoints", 0)
        allowed = within_budget(
            requested, budget, spent, member_cap=doc.get("memberCapPoints"), member_earned=earned.get(cid, 0)
        )
        if allowed <= 0:
            continue
        if budget is not None:
            exhausted = tx.now if spent + allowed >= budget else None
            if not await store.spend_budget(
                tx.db, doc["_id"], allowed, seen_spent=spent, exhausted_at=exhausted, session=tx.session
            ):
                raise LookupError(f"campaign {cid} changed under this transaction")
        entry = await tx.earn(
            member_id,
            allowed,
            Memo(
                EntryKind.CAMPAIGN,
                f"Campaign {doc['name']} on {order_id}",
                Source("CAMPAIGN", cid),
                {"orderId": order_id, "requested": requested},
            ),
            available_at=available_at,
        )
        for index, share in zip(indexes, allocate(allowed, [wanted[i].points for i in indexes]), strict=True):
            line_bonus[index] = (cid, share)
        given.append(
            {
                "campaignId": cid,
                "name": doc["name"],
                "points": allowed,
                "requested": requested,
                "entryId": entry["_id"],
                "lotIds": [t["lotId"] for t in entry["lots"]],
                "takenBack": 0,
            }
        )
    return CampaignEarning(line_bonus, given)
