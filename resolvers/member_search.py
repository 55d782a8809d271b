"""The back office's member search (issue 14 §1): ``members`` and ``memberCount`` (members:read).

``MemberFilterInput`` is the one member filter of the API: the search takes it, and so does
anything that targets a set of members (a segment grant).
"""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from gateway.core.permissions import Permission, require_permission
from gateway.domain.admin_audit import AuditAction
from gateway.domain.analytics import Segment
from gateway.domain.member_search import MemberFilter, MemberOrder, position_of
from gateway.features.member_segments import Snapshot
from gateway.features.members import parse_filter
from resolvers.analytics_types import RfmSegment, RfmSegmentName
from resolvers.context import Info
from resolvers.enums import graphql_enum, to_domain
from resolvers.member_types import Member
from resolvers.pagination import Connection, connection, decode_cursor, page_size

MemberOrderBy = graphql_enum(MemberOrder, "MemberOrderBy", "The order of a member list.")


@strawberry.input(description="Which members: every field given narrows the result (AND); see docs/back-office.md.")
class MemberFilterInput:
    name: str | None = strawberry.field(
        default=None, description="Part of the display name, any case (a surname, a given name, a word)."
    )
    phone: str | None = strawberry.field(
        default=None, description="The whole number or its last digits (at least 4); spaces, dashes, + ignored."
    )
    email: str | None = strawberry.field(
        default=None, description="The address or its start (at least 3 characters), any case."
    )
    tiers: list[str] | None = strawberry.field(default=None, description="Any of these tier codes.")
    segments: list[RfmSegmentName] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these RFM segments, as of the last segment snapshot."
    )
    joined_from: datetime | None = strawberry.field(default=None, description="Registered at or after.")
    joined_to: datetime | None = strawberry.field(default=None, description="Registered before.")
    spend_min: int | None = strawberry.field(default=None, description="Lifetime spend at least, in fen.")
    spend_max: int | None = strawberry.field(default=None, description="Lifetime spend at most, in fen.")

    def to_domain(self) -> MemberFilter:
        return parse_filter(
            name=self.name,
            phone=self.phone,
            email=self.email,
            tiers=self.tiers,
            segments=[to_domain(Segment, s) for s in self.segments or ()],
            joined_from=self.joined_from,
            joined_to=self.joined_to,
            spend_min=self.spend_min,
            spend_max=self.spend_max,
        )


def member_filter(value: MemberFilterInput | None) -> MemberFilter:
    return value.to_domain() if value is not None else MemberFilter()


@strawberry.type(description="The last RFM segment snapshot of members (docs/members.md).")
class MemberSegmentSnapshot:
    as_of: datetime
    window_from: date = strawberry.field(description="First local date of purchases scored.")
    window_to: date = strawberry.field(description="Last local date of purchases scored.")
    scored: int = strawberry.field(description="Members who bought in the window and so have a segment.")
    segments: list[RfmSegment] = strawberry.field(description="Members per segment, largest first.")

    @classmethod
    def of(cls, snapshot: Snapshot) -> MemberSegmentSnapshot:
        return cls(
            as_of=snapshot.as_of,
            window_from=snapshot.window_from,
            window_to=snapshot.window_to,
            scored=snapshot.scored,
            segments=[RfmSegment(segment=RfmSegmentName(s), members=n) for s, n in snapshot.segments],
        )


@strawberry.type
class MemberSearchQuery:
    @strawberry.field(description="Staff (members:read): members matching a filter, newest first or by lifetime spend.")
    async def members(
        self,
        info: Info,
        filter: MemberFilterInput | None = None,
        order_by: MemberOrderBy = MemberOrderBy.NEWEST,  # type: ignore[valid-type,attr-defined]
        first: int = 20,
        after: str | None = None,
    ) -> Connection[Member]:
        require_permission(info.context.principal, Permission.MEMBERS_READ)
        size = page_size(first)
        order = to_domain(MemberOrder, order_by)
        docs = await info.context.services.members.search(
            member_filter(filter), order=order, first=size, after=decode_cursor(after)
        )
        for doc in docs:
            info.context.member_loader.prime(doc["_id"], doc)
        return connection([Member.of(doc) for doc in docs], size, lambda m: position_of(order, m.doc).encode())

    @strawberry.field(description="Staff (members:read): how many members match a filter.")
    async def member_count(self, info: Info, filter: MemberFilterInput | None = None) -> int:
        require_permission(info.context.principal, Permission.MEMBERS_READ)
        return await info.context.services.members.count(member_filter(filter))

    @strawberry.field(description="Staff (members:read): the last RFM segment snapshot; null before the first.")
    async def member_segment_snapshot(self, info: Info) -> MemberSegmentSnapshot | None:
        require_permission(info.context.principal, Permission.MEMBERS_READ)
        snapshot = await info.context.services.member_segments.current()
        return None if snapshot is None else MemberSegmentSnapshot.of(snapshot)


@strawberry.type
class MemberSearchMutation:
    @strawberry.mutation(
        description="Operations: take the RFM segment snapshot now (it also runs daily in the server), e.g. "
        "before a segment grant. Audited."
    )
    async def refresh_member_segments(self, info: Info) -> MemberSegmentSnapshot:
        who = require_permission(info.context.principal, Permission.OPERATIONS)
        services = info.context.services
        snapshot = await services.member_segments.refresh()
        await services.admin_audit.record(
            who,
            AuditAction.MEMBER_SEGMENTS_REFRESH,
            "member_segments",
            "current",
            {"scored": snapshot.scored, "from": snapshot.window_from, "to": snapshot.window_to},
        )
        return MemberSegmentSnapshot.of(snapshot)
