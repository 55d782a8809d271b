"""Member queries and registration."""

from __future__ import annotations

from datetime import date

import strawberry

from gateway.core.auth import Role, require_principal
from gateway.core.errors import Forbidden, quote
from gateway.core.permissions import Permission, allows, require_permission, require_self_or
from gateway.domain.membership import Plan
from gateway.features.members import ProfileUpdate, Registration
from resolvers.context import Info
from resolvers.member_types import Member
from resolvers.points_types import PaidMembershipPlan


@strawberry.input
class RegisterMemberInput:
    display_name: str
    email: str | None = None
    phone: str | None = None
    birthday: date | None = None
    referrer_id: str | None = None
    id: str | None = strawberry.field(
        default=None, description="Admins may choose the id (e.g. the shop's customer id)."
    )


@strawberry.input(description="Only the fields given change; null clears email, phone or birthday.")
class UpdateProfileInput:
    member_id: str
    display_name: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET
    phone: str | None = strawberry.UNSET
    birthday: date | None = strawberry.field(
        default=strawberry.UNSET,
        description="A member sets it once; changing or clearing a recorded birthday takes an admin.",
    )

    def update(self) -> ProfileUpdate:
        fields = {"displayName": self.display_name, "email": self.email, "phone": self.phone, "birthday": self.birthday}
        return ProfileUpdate({k: v for k, v in fields.items() if v is not strawberry.UNSET})


@strawberry.type
class MemberQuery:
    @strawberry.field(description="A member by id: the member themselves or an admin.")
    async def member(self, info: Info, id: strawberry.ID) -> Member:
        require_self_or(info.context.principal, str(id), Permission.MEMBERS_READ)
        return Member.of(await info.context.load_member(str(id)))

    @strawberry.field(description="The member the bearer token belongs to.")
    async def me(self, info: Info) -> Member:
        who = require_principal(info.context.principal)
        if who.role is not Role.MEMBER:
            raise Forbidden("`me` is for member tokens")
        return Member.of(await info.context.load_member(who.subject))


@strawberry.type
class MemberMutation:
    @strawberry.mutation(
        description="Admins register anyone; a member token registers its own subject as the member id."
    )
    async def register_member(self, info: Info, input: RegisterMemberInput) -> Member:
        who = require_principal(info.context.principal)
        services = info.context.services
        member_id: str | None
        if who.role is Role.MEMBER:
            member_id = who.subject
        elif allows(who, Permission.SHOP_BACKEND):
            member_id = input.id
        else:
            raise Forbidden(f"Role {quote(who.role.value)} may not register members")
        registration = Registration(
            display_name=input.display_name,
            email=input.email,
            phone=input.phone,
            birthday=input.birthday,
            referrer_id=input.referrer_id,
            member_id=member_id,
        ).validated(services.clock.now().date())
        program = await info.context.program()
        doc = await services.members.register(registration, program)
        return Member.of(doc)

    @strawberry.mutation(
        description="Admin (the shop's backend): record a bought paid-membership plan. It extends a running term "
        "from its end, or starts one now; a replayed idempotencyKey extends nothing."
    )
    async def record_paid_membership(
        self,
        info: Info,
        member_id: strawberry.ID,
        plan: PaidMembershipPlan,  # type: ignore[valid-type]
        idempotency_key: str,
    ) -> Member:
        who = require_permission(info.context.principal, Permission.SHOP_BACKEND)
        bought = Plan(plan.value)  # type: ignore[attr-defined]
        await info.context.services.paid_memberships.record(who, str(member_id), bought, idempotency_key)
        info.context.forget_member(str(member_id))
        return Member.of(await info.context.load_member(str(member_id)))

    @strawberry.mutation(description="Admin: end a running paid membership now (refunded or revoked).")
    async def end_paid_membership(self, info: Info, member_id: strawberry.ID, reason: str | None = None) -> Member:
        who = require_permission(info.context.principal, Permission.SHOP_BACKEND)
        await info.context.services.paid_memberships.end(who, str(member_id), reason)
        info.context.forget_member(str(member_id))
        return Member.of(await info.context.load_member(str(member_id)))

    @strawberry.mutation(
        description="Change a member's name, contact details or birthday: the member themself or an admin. "
        "Invalid values → BAD_USER_INPUT; an email another member uses → ALREADY_EXISTS; a member changing a "
        "recorded birthday → BIRTHDAY_LOCKED."
    )
    async def update_profile(self, info: Info, input: UpdateProfileInput) -> Member:
        who = require_self_or(info.context.principal, input.member_id, Permission.SHOP_BACKEND)
        doc = await info.context.services.members.update_profile(
            input.member_id, input.update(), by_admin=who.role is not Role.MEMBER
        )
        info.context.forget_member(input.member_id)
        return Member.of(doc)
