"""Staff actions on a member account: freeze, unfreeze (members:freeze), PIPL export and erasure
(members:privacy). See docs/members.md."""

from __future__ import annotations

from datetime import datetime

import orjson
import strawberry

from gateway.core.permissions import Permission, require_permission
from resolvers.context import Info
from resolvers.member_types import Member


@strawberry.type(description="Everything the gateway holds about a member (PIPL), as one JSON document.")
class MemberDataExport:
    member_id: str
    exported_at: datetime
    sections: list[ExportSection] = strawberry.field(description="Documents per section of the export.")
    document: str = strawberry.field(description="The export as a JSON text (format loyalty-gateway/member-export/v1).")


@strawberry.type
class ExportSection:
    name: str
    documents: int


@strawberry.type(description="What an erasure did.")
class MemberErasure:
    member: Member
    forfeited_points: int = strawberry.field(description="Points still held that lapsed with the account.")
    partner_links_removed: int
    notifications_scrubbed: int


@strawberry.type
class MemberAccountMutation:
    @strawberry.mutation(
        description="members:freeze — freeze an account with a reason: it neither earns nor spends (MEMBER_FROZEN) "
        "until unfrozen; its holds in flight are released. Audited."
    )
    async def freeze_member(self, info: Info, member_id: strawberry.ID, reason: str) -> Member:
        who = require_permission(info.context.principal, Permission.MEMBERS_FREEZE)
        await info.context.services.member_accounts.freeze(who, str(member_id), reason)
        info.context.forget_member(str(member_id))
        return Member.of(await info.context.load_member(str(member_id)))

    @strawberry.mutation(description="members:freeze — unfreeze an account, with a reason. Audited.")
    async def unfreeze_member(self, info: Info, member_id: strawberry.ID, reason: str) -> Member:
        who = require_permission(info.context.principal, Permission.MEMBERS_FREEZE)
        await info.context.services.member_accounts.unfreeze(who, str(member_id), reason)
        info.context.forget_member(str(member_id))
        return Member.of(await info.context.load_member(str(member_id)))

    @strawberry.mutation(
        description="members:privacy — export everything about a member (PIPL access request); `reason` is the "
        "request's reference. Audited."
    )
    async def export_member_data(self, info: Info, member_id: strawberry.ID, reason: str) -> MemberDataExport:
        who = require_permission(info.context.principal, Permission.MEMBERS_PRIVACY)
        document = await info.context.services.member_accounts.export(who, str(member_id), reason)
        sections = [
            ExportSection(name=name, documents=len(value))
            for name, value in document.items()
            if isinstance(value, list)
        ]
        return MemberDataExport(
            member_id=str(member_id),
            exported_at=datetime.fromisoformat(document["exportedAt"]),
            sections=sections,
            document=orjson.dumps(document).decode(),
        )

    @strawberry.mutation(
        description="members:privacy — erase a member's personal data (PIPL deletion request): the profile is "
        "pseudonymized, the account closed, points still held lapse; ledger amounts stay. Refused while holds are "
        "in flight or orders unfinished (ACCOUNT_BUSY). Audited."
    )
    async def erase_member_data(self, info: Info, member_id: strawberry.ID, reason: str) -> MemberErasure:
        who = require_permission(info.context.principal, Permission.MEMBERS_PRIVACY)
        result = await info.context.services.member_accounts.erase(who, str(member_id), reason)
        info.context.forget_member(str(member_id))
        changed = result["changed"]
        return MemberErasure(
            member=Member.of(await info.context.load_member(str(member_id))),
            forfeited_points=result["forfeitedPoints"],
            partner_links_removed=changed["partnerLinks"],
            notifications_scrubbed=changed["notifications"],
        )


@strawberry.type(description="Two accounts of one person merged into one (docs/members.md).")
class MemberMerge:
    id: str
    source_id: str = strawberry.field(description="The duplicate, now a tombstone pointing at the target.")
    target_id: str = strawberry.field(description="The account that survives.")
    status: str = strawberry.field(description="MERGED, or REVERSED once undone.")
    at: datetime
    reason: str
    available_moved: int
    pending_moved: int
    returned_points: int | None = strawberry.field(description="Undone: the points that went back to the source.")
    points_not_returned: int | None = strawberry.field(
        description="Undone: points the merged account spent or let expire meanwhile, not re-created."
    )

    @classmethod
    def of(cls, doc: dict) -> MemberMerge:  # type: ignore[type-arg]
        from gateway.core.clock import as_utc

        return cls(
            id=doc["_id"],
            source_id=doc["source"],
            target_id=doc["target"],
            status=doc["status"],
            at=as_utc(doc["at"]),
            reason=doc["reason"],
            available_moved=doc["points"]["available"],
            pending_moved=doc["points"]["pending"],
            returned_points=doc.get("returned"),
            points_not_returned=doc.get("notReturned"),
        )


@strawberry.input
class MergeMembersInput:
    source_id: strawberry.ID = strawberry.field(description="The duplicate account, merged away.")
    target_id: strawberry.ID = strawberry.field(description="The account that survives.")
    reason: str
    idempotency_key: str


@strawberry.type
class MemberMergeMutation:
    @strawberry.mutation(
        description="members:merge — merge a duplicate account into the one that survives, in one transaction: "
        "points (with their expiry), orders, purchases and partner links move; the ledger records both sides. "
        "Idempotent on idempotencyKey (and on the same pair). Audited."
    )
    async def merge_members(self, info: Info, input: MergeMembersInput) -> MemberMerge:
        who = require_permission(info.context.principal, Permission.MEMBERS_MERGE)
        merges = info.context.services.member_merges
        result = await merges.merge(
            who, str(input.source_id), str(input.target_id), input.reason, input.idempotency_key
        )
        return MemberMerge.of(await merges.get(result["mergeId"]))  # type: ignore[arg-type]

    @strawberry.mutation(
        description="members:merge — undo a merge: what came from the source and is still there goes back. Audited."
    )
    async def unmerge_members(self, info: Info, merge_id: str, reason: str) -> MemberMerge:
        who = require_permission(info.context.principal, Permission.MEMBERS_MERGE)
        merges = info.context.services.member_merges
        await merges.unmerge(who, merge_id, reason)
        return MemberMerge.of(await merges.get(merge_id))  # type: ignore[arg-type]


@strawberry.type
class MemberMergeQuery:
    @strawberry.field(description="members:read — the merges a member took part in, newest first.")
    async def member_merges(self, info: Info, member_id: strawberry.ID) -> list[MemberMerge]:
        require_permission(info.context.principal, Permission.MEMBERS_READ)
        return [MemberMerge.of(doc) for doc in await info.context.services.member_merges.of_member(str(member_id))]
