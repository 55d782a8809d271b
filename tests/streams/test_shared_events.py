"""The shared subscription result cache never hands one caller's result to another (issue 11, item 12).

Today's event types render the same for everyone; this schema adds the kind of field that one
day could look at the caller, and runs it through the gateway's own executor with two callers of
different roles subscribed to the same event with the same document.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

import strawberry

from gateway.core.auth import Principal, Role
from resolvers.shared_events import SharedEvent, SharedEventExecutor, audience


@strawberry.type
class PriceEvent(SharedEvent):
    gift_id: str

    @strawberry.field
    def cost_price(self, info: strawberry.Info) -> int | None:
        principal = info.context.principal
        return 320_000 if principal is not None and principal.role is Role.ADMIN else None


EVENT = PriceEvent(gift_id="g1")  # one committed change, broadcast to every subscriber


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def prices(self) -> AsyncGenerator[PriceEvent, None]:
        yield EVENT


schema = strawberry.Schema(query=Query, subscription=Subscription, execution_context_class=SharedEventExecutor)
DOCUMENT = "subscription { prices { giftId costPrice } }"


@dataclass
class Caller:
    principal: Principal | None


async def first_result(principal: Principal | None) -> dict:
    stream = await schema.subscribe(DOCUMENT, context_value=Caller(principal))
    async for result in stream:
        assert not result.errors, result.errors
        return result.data
    raise AssertionError("no event")


async def test_two_callers_of_different_roles_each_get_their_own_result():
    admin = await first_result(Principal(Role.ADMIN, "admin-1"))
    member = await first_result(Principal(Role.MEMBER, "m1"))
    anonymous = await first_result(None)
    assert admin == {"prices": {"giftId": "g1", "costPrice": 320_000}}
    assert member == anonymous == {"prices": {"giftId": "g1", "costPrice": None}}
    # Same audience, same document, same event: computed once and shared.
    assert await first_result(Principal(Role.ADMIN, "admin-2")) == admin
    assert len(EVENT.__dict__["_shared_results"]) == 3


def test_the_audience_is_the_role_plus_the_subject_where_data_is_scoped_to_it():
    assert audience(None) == ("anonymous",)
    assert audience(Principal(Role.ADMIN, "a")) == audience(Principal(Role.ADMIN, "b")) == ("admin",)
    assert audience(Principal(Role.DASHBOARD, "d")) == ("dashboard",)
    assert audience(Principal(Role.MEMBER, "m1")) != audience(Principal(Role.MEMBER, "m2"))
    assert audience(Principal(Role.PARTNER, "coffee")) == ("partner", "coffee")
