"""Who may run what: one table, every root field of the schema × every kind of caller.

``MATRIX`` declares, for every query, mutation and subscription, the outcome each caller gets:
``OK`` (no error at all) or the ``extensions.code`` of the first error. The test is generated
from the schema: it fails when an operation has no row, when a row names an operation the schema
no longer has, when a row lacks a caller, and when a role of ``gateway.core.auth.Role`` has no caller.

Adding an operation: add its row (document, variables, expected outcome per caller) and its line
in docs/roles.md's operations table. A staff operation's row is ``needs(Permission.X, ...)``: each
staff caller's outcome follows from ROLE_PERMISSIONS (OK when its role holds X, else FORBIDDEN), so
the matrix proves the permission table is what the resolvers enforce. ``outcomes()`` is for
operations no staff permission opens (members, partners, the payments service, public).
Adding a role: add a ``Caller`` to ``CALLERS``; staff roles need nothing more in the rows.

Queries and mutations go through HTTP with the caller's real credentials. Subscriptions run
through graphql-core's ``subscribe`` on the real schema with a WebSocket connection's context:
authorization happens before the stream starts, so a refused subscription is an ExecutionResult
with errors and an allowed one is a live stream (closed at once), with no waiting for events.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from graphql import ExecutionResult, parse, subscribe

from gateway.core.auth import Principal, Role
from gateway.core.permissions import ROLE_PERMISSIONS, Permission, permissions_of
from gateway.services import Services
from resolvers.schema import schema
from tests.conftest import GraphQLClient, token
from tests.support.catalog_helpers import create_gift, member_with
from tests.support.ledger_helpers import add_member
from tests.support.partner_helpers import add_partner

OK = "OK"
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"

ANONYMOUS = "anonymous"
MEMBER_SELF = "member_self"
MEMBER_OTHER = "member_other"
PARTNER_OWN = "partner_own"
PARTNER_OTHER = "partner_other"
DASHBOARD = "dashboard"
PAYMENTS = "payments"
ADMIN = "admin"
SUPPORT = "support"
FINANCE = "finance"
WAREHOUSE = "warehouse"
MARKETING = "marketing"


@dataclass(frozen=True)
class Caller:
    """A kind of caller; ``role`` None is anonymous."""

    name: str
    role: Role | None
    description: str


CALLERS: tuple[Caller, ...] = (
    Caller(ANONYMOUS, None, "no credentials"),
    Caller(MEMBER_SELF, Role.MEMBER, "member alice, acting on alice"),
    Caller(MEMBER_OTHER, Role.MEMBER, "member bob, acting on alice"),
    Caller(PARTNER_OWN, Role.PARTNER, "partner 'own' (alice linked to it), acting on itself / alice"),
    Caller(PARTNER_OTHER, Role.PARTNER, "partner 'rival', acting on partner 'own' / alice"),
    Caller(DASHBOARD, Role.DASHBOARD, "a dashboard token"),
    Caller(PAYMENTS, Role.PAYMENTS, "the payment service's token"),
    Caller(ADMIN, Role.ADMIN, "an operator"),
    Caller(SUPPORT, Role.SUPPORT, "customer service staff"),
    Caller(FINANCE, Role.FINANCE, "finance staff"),
    Caller(WAREHOUSE, Role.WAREHOUSE, "warehouse staff"),
    Caller(MARKETING, Role.MARKETING, "marketing staff"),
)
CALLER_NAMES = tuple(c.name for c in CALLERS)
# Staff and the dashboard act through permissions (gateway/core/permissions.py).
STAFF_CALLERS = tuple(c for c in CALLERS if c.role in ROLE_PERMISSIONS)


class Outcomes(dict[str, str]):
    """Every caller's outcome, and what lets staff run the operation: ``permissions`` (any one of
    them), none at all (no staff role may), or ``public`` (anyone may)."""

    def __init__(self, values: dict[str, str], permissions: tuple[Permission, ...] = (), public: bool = False):
        super().__init__(values)
        self.permissions = permissions
        self.public = public


def outcomes(default: str = FORBIDDEN, *, anonymous: str = UNAUTHENTICATED, **per_caller: str) -> Outcomes:
    """An operation no staff permission opens (staff get ``default``, FORBIDDEN unless public):
    every caller's outcome is ``default`` unless named (anonymous defaults to UNAUTHENTICATED)."""
    unknown = set(per_caller) - set(CALLER_NAMES)
    assert not unknown, f"unknown callers {unknown}"
    values = {name: per_caller.get(name, anonymous if name == ANONYMOUS else default) for name in CALLER_NAMES}
    return Outcomes(values, public=default == OK and anonymous == OK)


def needs(permission: Permission, *alternatives: Permission, allowed: str = OK, **per_caller: str) -> Outcomes:
    """An operation staff run with ``permission`` (or one of ``alternatives``): each staff caller
    (and the dashboard) gets ``allowed`` when its role holds one of them in ROLE_PERMISSIONS, else
    FORBIDDEN. Members, partners and the payments service are named in ``per_caller`` (default
    FORBIDDEN; anonymous UNAUTHENTICATED)."""
    wanted = (permission, *alternatives)
    staff = {
        caller.name: FORBIDDEN if permissions_of(caller.role).isdisjoint(wanted) else allowed
        for caller in STAFF_CALLERS
    }
    overridden = set(per_caller) & staff.keys()
    assert not overridden, f"staff outcomes follow the permission, do not name {overridden}"
    values = outcomes(**per_caller)
    values.update(staff)
    return Outcomes(values, wanted)


PUBLIC = outcomes(OK, anonymous=OK)
P = Permission


@dataclass
class World:
    """The data every row runs against: alice (linked to partner 'own'), bob, a gift, an order."""

    services: Services
    gql: GraphQLClient
    admin: str
    alice: str = "alice"
    bob: str = "bob"
    gift_id: str = ""
    redemption_id: str = ""
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    keys: itertools.count = field(default_factory=itertools.count)

    def key(self, caller: str) -> str:
        """A fresh id or idempotency key, so every caller's attempt is a new operation."""
        return f"{caller}-{next(self.keys)}"

    async def new_gift(self, **fields: Any) -> str:
        return (await create_gift(self.gql, self.admin, listed=True, stock=1000, points=100, **fields))["id"]

    async def new_redemption(self) -> str:
        body = await self.gql.ok(
            "mutation($input: RedeemGiftInput!) { redeemGift(input: $input) { id } }",
            {
                "input": {
                    "memberId": self.alice,
                    "giftId": self.gift_id,
                    "quantity": 1,
                    "cashPaid": 0,
                    "idempotencyKey": self.key("setup"),
                }
            },
            token=self.admin,
        )
        return body["redeemGift"]["id"]

    async def accrue_as_own(self, event_id: str) -> None:
        await self.gql.ok(
            "mutation($input: PartnerAccrueInput!) { partnerAccrue(input: $input) { replayed } }",
            {"input": {"eventId": event_id, "memberRef": "alice-ref", "points": 10}},
            api_key=self.credentials[PARTNER_OWN]["api_key"],
        )


async def build_world(services: Services, gql: GraphQLClient) -> World:
    admin = token(Role.ADMIN, "admin-1")
    world = World(services=services, gql=gql, admin=admin)
    await member_with(services, "alice", points=100_000, tier="SUPREME_VIP")
    await member_with(services, "bob", points=100_000, tier="SUPREME_VIP")
    own = await add_partner(services, "own")
    rival = await add_partner(services, "rival")
    await services.partner_links.link(Principal(Role.ADMIN, "setup"), "alice", "own", "alice-ref")
    world.gift_id = await world.new_gift()
    world.redemption_id = await world.new_redemption()
    world.credentials = {
        ANONYMOUS: {},
        MEMBER_SELF: {"token": token(Role.MEMBER, "alice")},
        MEMBER_OTHER: {"token": token(Role.MEMBER, "bob")},
        PARTNER_OWN: {"api_key": own.api_key},
        PARTNER_OTHER: {"api_key": rival.api_key},
        DASHBOARD: {"token": token(Role.DASHBOARD, "dash-1")},
        PAYMENTS: {"token": token(Role.PAYMENTS, "psp-1")},
        SUPPORT: {"token": token(Role.SUPPORT, "support-1")},
        FINANCE: {"token": token(Role.FINANCE, "finance-1")},
        WAREHOUSE: {"token": token(Role.WAREHOUSE, "warehouse-1")},
        MARKETING: {"token": token(Role.MARKETING, "marketing-1")},
        ADMIN: {"token": admin},
    }
    await world.accrue_as_own("own-seed-event")
    return world


Variables = Callable[[World, str], Awaitable[dict[str, Any]]]


def fixed(**values: Any) -> Variables:
    async def make(world: World, caller: str) -> dict[str, Any]:
        return dict(values)

    return make


@dataclass(frozen=True)
class Row:
    document: str
    expect: dict[str, str]
    variables: Variables = fixed()


async def _fresh_member(world: World, caller: str) -> dict[str, Any]:
    """A member of its own per attempt (freezing or erasing alice would change every other row)."""
    member_id = world.key(f"fresh-{caller}")
    await add_member(world.services, member_id)
    return {"id": member_id}


async def _frozen_member(world: World, caller: str) -> dict[str, Any]:
    member = await _fresh_member(world, caller)
    await world.services.member_accounts.freeze(Principal(Role.ADMIN, "setup"), member["id"], "matrix")
    return member


async def _fresh_pair(world: World, caller: str) -> dict[str, Any]:
    source, target = (await _fresh_member(world, caller))["id"], (await _fresh_member(world, caller))["id"]
    return {"input": {"sourceId": source, "targetId": target, "reason": "duplicate", "idempotencyKey": source}}


async def _fresh_merge(world: World, caller: str) -> dict[str, Any]:
    pair = (await _fresh_pair(world, caller))["input"]
    merged = await world.services.member_merges.merge(
        Principal(Role.ADMIN, "setup"), pair["sourceId"], pair["targetId"], "duplicate", pair["idempotencyKey"]
    )
    return {"id": merged["mergeId"]}


async def _alice(world: World, caller: str) -> dict[str, Any]:
    return {"memberId": world.alice}


async def _gift(world: World, caller: str) -> dict[str, Any]:
    return {"id": world.gift_id}


async def _fresh_gift(world: World, caller: str) -> dict[str, Any]:
    return {"id": await world.new_gift()}


async def _fresh_redemption(world: World, caller: str) -> dict[str, Any]:
    return {"id": await world.new_redemption()}


async def _fresh_campaign(world: World, caller: str) -> dict[str, Any]:
    from datetime import timedelta

    from gateway.domain.campaigns import BoostSpec, CampaignSpec

    start = world.services.clock.now() + timedelta(days=1)
    end = start + timedelta(days=7)
    spec = CampaignSpec(name=f"c-{caller}", starts_at=start, ends_at=end, boosts=(BoostSpec(200),))
    doc = await world.services.campaigns.create(Principal(Role.ADMIN, "setup"), spec)
    return {"id": str(doc["_id"])}


CAMPAIGN_INPUT = (
    '{name: "Spring", startsAt: "2030-01-01T00:00:00Z", endsAt: "2030-01-08T00:00:00Z", '
    "boosts: [{multiplierPercent: 200}]}"
)


async def _waiting_segment_grant(world: World, caller: str) -> dict[str, Any]:
    """A segment grant by someone else, waiting for a second person's approval."""
    from gateway.domain.member_search import MemberFilter

    grants = world.services.segment_grants
    job = await grants.start(Principal(Role.MARKETING, "setup"), MemberFilter(), 5, "matrix", world.key(caller))
    threshold, grants.approval_threshold = grants.approval_threshold, 0
    try:
        await grants.run_job(str(job["_id"]))
    finally:
        grants.approval_threshold = threshold
    return {"id": str(job["_id"])}


async def _segment_grant_input(world: World, caller: str) -> dict[str, Any]:
    return {"i": {"points": 5, "reason": "matrix", "idempotencyKey": world.key(caller), "filter": {"tiers": ["VIP"]}}}


async def _held_checkout(world: World, caller: str) -> dict[str, Any]:
    order = world.key(caller)
    await world.gql.ok(
        "mutation($input: DeductPointsInput!) { deductPointsAtCheckout(input: $input) { status } }",
        {
            "input": {
                "memberId": world.alice,
                "orderId": order,
                "orderAmount": 10_000,
                "points": 100,
                "idempotencyKey": order,
            }
        },
        token=world.admin,
    )
    return {"memberId": world.alice, "orderId": order}


async def _unpaid_redemption(world: World, caller: str) -> dict[str, Any]:
    gift = await world.new_gift(cash=500)
    body = await world.gql.ok(
        "mutation($input: RedeemGiftInput!) { redeemGift(input: $input) { id } }",
        {
            "input": {
                "memberId": world.alice,
                "giftId": gift,
                "quantity": 1,
                "cashPaid": 500,
                "idempotencyKey": world.key("setup"),
            }
        },
        token=world.admin,
    )
    return {"id": body["redeemGift"]["id"], "ref": world.key(caller)}


async def _running_paid_membership(world: World, caller: str) -> dict[str, Any]:
    await world.gql.ok(
        'mutation($key: String!) { recordPaidMembership(memberId: "alice", plan: YEARLY, idempotencyKey: $key) '
        "{ id } }",
        {"key": world.key("setup")},
        token=world.admin,
    )
    return {}


def _with_key(build: Callable[[World, str, str], dict[str, Any]]) -> Variables:
    async def make(world: World, caller: str) -> dict[str, Any]:
        return build(world, caller, world.key(caller))

    return make


async def _refund(world: World, caller: str) -> dict[str, Any]:
    order = world.key(caller)
    await world.gql.ok(
        "mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) { points } }",
        {"input": {"memberId": world.alice, "orderId": order, "amount": 10_000, "idempotencyKey": order}},
        token=world.admin,
    )
    return {"input": {"memberId": world.alice, "orderId": order, "amount": 10_000, "idempotencyKey": order + "-r"}}


async def _grant_request(world: World, caller: str) -> dict[str, Any]:
    """A pending grant request filed by another admin (nobody approves their own)."""
    filed = await world.services.grants.grant(
        Principal(Role.ADMIN, "requester"), [world.alice], 100_001, "matrix", world.key(caller)
    )
    return {"id": filed["requestId"]}


async def _check_in(world: World, caller: str) -> dict[str, Any]:
    # Once per day per member: each caller that may check in targets a member of its own.
    target = world.alice if caller != ADMIN else world.bob
    return {"memberId": target, "key": world.key(caller)}


async def _link(world: World, caller: str) -> dict[str, Any]:
    target = world.bob if caller == ADMIN else world.alice
    return {"memberId": target, "partnerId": "rival", "ref": world.key(caller)}


async def _link_code(world: World, caller: str) -> dict[str, Any]:
    code, _ = await world.services.partner_links.create_code(world.bob, "own")
    return {"code": code, "ref": world.key(caller)}


async def _reverse(world: World, caller: str) -> dict[str, Any]:
    original = world.key("original")
    await world.accrue_as_own(original)
    return {"input": {"eventId": world.key(caller), "originalEventId": original}}


TIERS = [
    {
        "code": "MEMBER",
        "name": "Member",
        "threshold": 100,
        "pricePercent": 98,
        "earnMultiplierPercent": 100,
        "canRedeemGifts": False,
        "benefits": [],
    },
    {
        "code": "SENIOR",
        "name": "Senior",
        "threshold": 38_000,
        "pricePercent": 95,
        "earnMultiplierPercent": 100,
        "canRedeemGifts": True,
        "benefits": [],
    },
    # Codes are stable ids: alice holds SUPREME_VIP, so the tier list keeps every code in use.
    {
        "code": "VIP",
        "name": "VIP",
        "threshold": 200_000,
        "pricePercent": 90,
        "earnMultiplierPercent": 120,
        "canRedeemGifts": True,
        "benefits": [],
    },
    {
        "code": "SUPREME_VIP",
        "name": "Supreme VIP",
        "threshold": 500_000,
        "pricePercent": 86,
        "earnMultiplierPercent": 150,
        "canRedeemGifts": True,
        "benefits": [],
    },
]
PARTNER_INPUT = {
    "name": "New",
    "currencyName": "new points",
    "rate": {"partnerPoints": 10, "coalitionPoints": 1},
    "feeBasisPoints": 0,
    "feeFixedPoints": 0,
    "settlementMilliFenPerPoint": 1000,
    "active": True,
}

MATRIX: dict[str, Row] = {
    # ---- queries
    "Query._entities": Row(
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Member { id } } }",
        needs(P.MEMBERS_READ, member_self=OK),
        fixed(r=[{"__typename": "Member", "id": "alice"}]),
    ),
    "Query._service": Row("{ _service { sdl } }", PUBLIC),
    "Query.tiers": Row("{ tiers { code } }", PUBLIC),
    "Query.member": Row(
        "query($id: ID!) { member(id: $id) { id } }", needs(P.MEMBERS_READ, member_self=OK), fixed(id="alice")
    ),
    "Query.members": Row(
        'query { members(filter: {name: "ali"}, first: 5) { edges { node { id } } } }', needs(P.MEMBERS_READ)
    ),
    "Query.memberCount": Row('query { memberCount(filter: {tiers: ["SUPREME_VIP"]}) }', needs(P.MEMBERS_READ)),
    "Query.memberMerges": Row('{ memberMerges(memberId: "alice") { id } }', needs(P.MEMBERS_READ)),
    "Query.memberSegmentSnapshot": Row("{ memberSegmentSnapshot { asOf } }", needs(P.MEMBERS_READ)),
    "Query.me": Row("{ me { id } }", outcomes(member_self=OK, member_other=OK)),
    "Query.program": Row("{ program { name } }", needs(P.RULES_MANAGE)),
    "Query.gifts": Row(
        "query($memberId: String) { gifts(first: 5, memberId: $memberId) { edges { node { id } } } }",
        needs(P.MEMBERS_READ, member_self=OK),
        _alice,
    ),
    "Query.gift": Row(
        "query($id: ID!, $m: String) { gift(id: $id, memberId: $m) { id eligibility { canRedeem } } }",
        needs(P.MEMBERS_READ, member_self=OK),
        lambda w, c: fixed(id=w.gift_id, m=w.alice)(w, c),
    ),
    "Query.redemption": Row(
        "query($id: ID!) { redemption(id: $id) { id } }",
        needs(P.MEMBERS_READ, P.ORDERS_FULFIL, member_self=OK, payments=OK, member_other="REDEMPTION_NOT_FOUND"),
        lambda w, c: fixed(id=w.redemption_id)(w, c),
    ),
    "Query.partners": Row("{ partners { id } }", needs(P.PARTNERS_MANAGE, P.STATEMENTS_READ)),
    "Query.partnerLinkEvents": Row(
        '{ partnerLinkEvents(memberId: "alice") { action } }', needs(P.PARTNERS_MANAGE, P.MEMBERS_READ)
    ),
    "Query.notificationSettings": Row(
        "{ notificationSettings { expiringReminderDays } }", needs(P.NOTIFICATIONS_MANAGE)
    ),
    "Query.notificationWebhooks": Row("{ notificationWebhooks { id } }", needs(P.NOTIFICATIONS_MANAGE)),
    "Query.notifications": Row("{ notifications(first: 5) { edges { node { id } } } }", needs(P.NOTIFICATIONS_MANAGE)),
    "Query.partner": Row(
        'query { partner(id: "own") { id } }', needs(P.PARTNERS_MANAGE, P.STATEMENTS_READ, partner_own=OK)
    ),
    # A partner always asks about its own events (partnerId is ignored): the rival gets null, not own's event.
    "Query.partnerOperation": Row(
        'query { partnerOperation(eventId: "own-seed-event", partnerId: "own") { eventId } }',
        needs(P.PARTNERS_MANAGE, partner_own=OK, partner_other=OK),
    ),
    "Query.partnerStatement": Row(
        'query { partnerStatement(partnerId: "own", from: "2026-01-01T00:00:00Z", to: "2026-12-01T00:00:00Z") '
        "{ reconciled } }",
        needs(P.STATEMENTS_READ, partner_own=OK),
    ),
    # ---- mutations
    "Mutation.registerMember": Row(
        "mutation($input: RegisterMemberInput!) { registerMember(input: $input) { id } }",
        needs(P.SHOP_BACKEND, member_self="ALREADY_EXISTS", member_other="ALREADY_EXISTS"),
        _with_key(lambda w, c, k: {"input": {"displayName": "New", "id": k}}),
    ),
    "Mutation.refreshMemberSegments": Row("mutation { refreshMemberSegments { scored } }", needs(P.OPERATIONS)),
    "Mutation.freezeMember": Row(
        'mutation($id: ID!) { freezeMember(memberId: $id, reason: "fraud check") { status } }',
        needs(P.MEMBERS_FREEZE),
        _fresh_member,
    ),
    "Mutation.unfreezeMember": Row(
        'mutation($id: ID!) { unfreezeMember(memberId: $id, reason: "cleared") { status } }',
        needs(P.MEMBERS_FREEZE),
        _frozen_member,
    ),
    "Mutation.mergeMembers": Row(
        "mutation($input: MergeMembersInput!) { mergeMembers(input: $input) { id } }",
        needs(P.MEMBERS_MERGE),
        _fresh_pair,
    ),
    "Mutation.unmergeMembers": Row(
        'mutation($id: String!) { unmergeMembers(mergeId: $id, reason: "not the same person") { status } }',
        needs(P.MEMBERS_MERGE),
        _fresh_merge,
    ),
    "Mutation.exportMemberData": Row(
        'mutation { exportMemberData(memberId: "alice", reason: "PIPL request 7") { memberId } }',
        needs(P.MEMBERS_PRIVACY),
    ),
    "Mutation.eraseMemberData": Row(
        'mutation($id: ID!) { eraseMemberData(memberId: $id, reason: "PIPL request 8") { forfeitedPoints } }',
        needs(P.MEMBERS_PRIVACY),
        _fresh_member,
    ),
    "Mutation.updateProfile": Row(
        'mutation { updateProfile(input: {memberId: "alice", displayName: "Alice L."}) { id } }',
        needs(P.SHOP_BACKEND, member_self=OK),
    ),
    "Mutation.recordPaidMembership": Row(
        'mutation($key: String!) { recordPaidMembership(memberId: "alice", plan: MONTHLY, idempotencyKey: $key) '
        "{ id } }",
        needs(P.SHOP_BACKEND),
        _with_key(lambda w, c, k: {"key": k}),
    ),
    "Mutation.endPaidMembership": Row(
        'mutation { endPaidMembership(memberId: "alice") { id } }', needs(P.SHOP_BACKEND), _running_paid_membership
    ),
    "Mutation.recordPurchase": Row(
        "mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) { points } }",
        needs(P.SHOP_BACKEND),
        _with_key(lambda w, c, k: {"input": {"memberId": "alice", "orderId": k, "amount": 100, "idempotencyKey": k}}),
    ),
    "Mutation.refundPurchase": Row(
        "mutation($input: RefundPurchaseInput!) { refundPurchase(input: $input) { pointsReturned } }",
        needs(P.SHOP_BACKEND),
        _refund,
    ),
    "Mutation.checkIn": Row(
        "mutation($memberId: ID!, $key: String) { checkIn(memberId: $memberId, idempotencyKey: $key) { points } }",
        needs(P.SHOP_BACKEND, member_self=OK),
        _check_in,
    ),
    "Mutation.recordBehaviour": Row(
        'mutation($key: String!) { recordBehaviour(memberId: "alice", event: "REVIEW", idempotencyKey: $key) '
        "{ points } }",
        needs(P.SHOP_BACKEND),
        _with_key(lambda w, c, k: {"key": k}),
    ),
    "Mutation.grantPoints": Row(
        "mutation($input: GrantPointsInput!) { grantPoints(input: $input) { points } }",
        needs(P.POINTS_ADJUST),
        _with_key(
            lambda w, c, k: {"input": {"memberId": "alice", "points": 10, "reason": "matrix", "idempotencyKey": k}}
        ),
    ),
    "Mutation.deductPointsAtCheckout": Row(
        "mutation($input: DeductPointsInput!) { deductPointsAtCheckout(input: $input) { points } }",
        needs(P.SHOP_BACKEND, member_self=OK),
        _with_key(
            lambda w, c, k: {
                "input": {"memberId": "alice", "orderId": k, "orderAmount": 100_000, "points": 100, "idempotencyKey": k}
            }
        ),
    ),
    "Mutation.cancelCheckoutDeduction": Row(
        "mutation($memberId: ID!, $orderId: String!) { cancelCheckoutDeduction(memberId: $memberId, "
        "orderId: $orderId) { status } }",
        needs(P.SHOP_BACKEND, member_self=OK),
        _held_checkout,
    ),
    "Mutation.consumeBenefit": Row(
        'mutation($m: ID!, $key: String!) { consumeBenefit(memberId: $m, code: "FREE_SHIPPING", idempotencyKey: $key) '
        "{ used } }",
        needs(P.SHOP_BACKEND, member_self=OK),
        # Free shipping is once a month: the admin uses bob's, after alice used hers.
        _with_key(lambda w, c, k: {"m": w.bob if c == ADMIN else w.alice, "key": k}),
    ),
    "Mutation.updateEarningRules": Row(
        "mutation { updateEarningRules(input: {checkInPoints: 7}) { name } }", needs(P.RULES_MANAGE)
    ),
    "Mutation.updateProgram": Row(
        'mutation { updateProgram(input: {name: "Renamed"}) { name } }', needs(P.RULES_MANAGE)
    ),
    "Mutation.updateTiers": Row(
        "mutation($tiers: [TierInput!]!) { updateTiers(tiers: $tiers) { name } }",
        needs(P.RULES_MANAGE),
        fixed(tiers=TIERS),
    ),
    "Mutation.createGift": Row(
        "mutation($input: CreateGiftInput!) { createGift(input: $input) { id } }",
        needs(P.CATALOG_MANAGE),
        fixed(
            input={
                "name": "Mug",
                "category": "home",
                "costPrice": 1000,
                "points": 50,
                "cash": 0,
                "stock": 5,
                "description": "A mug",
                "listed": True,
            }
        ),
    ),
    "Mutation.updateGift": Row(
        'mutation($id: ID!) { updateGift(id: $id, input: {name: "Renamed"}) { id } }', needs(P.CATALOG_MANAGE), _gift
    ),
    "Mutation.restockGift": Row(
        "mutation($id: ID!) { restockGift(id: $id, quantity: 1) { id } }", needs(P.CATALOG_MANAGE), _gift
    ),
    "Mutation.listGift": Row("mutation($id: ID!) { listGift(id: $id) { id } }", needs(P.CATALOG_MANAGE), _gift),
    "Mutation.unlistGift": Row("mutation($id: ID!) { unlistGift(id: $id) { id } }", needs(P.CATALOG_MANAGE), _gift),
    "Mutation.scheduleGift": Row(
        'mutation($id: ID!) { scheduleGift(id: $id, startsAt: "2027-01-01T00:00:00Z") { id } }',
        needs(P.CATALOG_MANAGE),
        _gift,
    ),
    "Mutation.setGiftOffer": Row(
        'mutation($id: ID!) { setGiftOffer(id: $id, input: {points: 50, startsAt: "2026-03-01T00:00:00Z", '
        'endsAt: "2026-04-01T00:00:00Z"}) { id } }',
        needs(P.CATALOG_MANAGE),
        _gift,
    ),
    "Mutation.clearGiftOffer": Row(
        "mutation($id: ID!) { clearGiftOffer(id: $id) { id } }", needs(P.CATALOG_MANAGE), _gift
    ),
    "Mutation.deleteGift": Row("mutation($id: ID!) { deleteGift(id: $id) }", needs(P.CATALOG_MANAGE), _fresh_gift),
    "Mutation.redeemGift": Row(
        "mutation($input: RedeemGiftInput!) { redeemGift(input: $input) { id } }",
        needs(P.SHOP_BACKEND, member_self=OK),
        _with_key(
            lambda w, c, k: {
                "input": {"memberId": "alice", "giftId": w.gift_id, "quantity": 1, "cashPaid": 0, "idempotencyKey": k}
            }
        ),
    ),
    "Mutation.confirmRedemptionPayment": Row(
        "mutation($id: ID!, $ref: String!) { confirmRedemptionPayment(id: $id, paymentReference: $ref, amount: 500) "
        "{ id } }",
        needs(P.SHOP_BACKEND, payments=OK),
        _unpaid_redemption,
    ),
    "Mutation.fulfillRedemption": Row(
        "mutation($id: ID!) { fulfillRedemption(id: $id) { id } }", needs(P.ORDERS_FULFIL), _fresh_redemption
    ),
    "Mutation.cancelRedemption": Row(
        "mutation($id: ID!) { cancelRedemption(id: $id) { id } }",
        needs(P.ORDERS_FULFIL, member_self=OK, member_other="REDEMPTION_NOT_FOUND"),
        _fresh_redemption,
    ),
    "Mutation.createPartner": Row(
        "mutation($input: CreatePartnerInput!) { createPartner(input: $input) { apiKey } }",
        needs(P.PARTNERS_MANAGE),
        _with_key(lambda w, c, k: {"input": {**PARTNER_INPUT, "id": k}}),
    ),
    "Mutation.rotatePartnerKey": Row('mutation { rotatePartnerKey(id: "rival") { apiKey } }', needs(P.PARTNERS_MANAGE)),
    "Mutation.updatePartner": Row(
        'mutation { updatePartner(id: "own", input: {name: "Own"}) { id } }', needs(P.PARTNERS_MANAGE)
    ),
    "Mutation.linkPartnerAccount": Row(
        "mutation($memberId: ID!, $partnerId: ID!, $ref: String!) "
        "{ linkPartnerAccount(memberId: $memberId, partnerId: $partnerId, partnerMemberRef: $ref) { partnerId } }",
        needs(P.PARTNERS_MANAGE),
        _link,
    ),
    "Mutation.createPartnerLinkCode": Row(
        'mutation { createPartnerLinkCode(memberId: "alice", partnerId: "rival") { code } }', outcomes(member_self=OK)
    ),
    # Codes belong to one partner: another partner's redemption is refused like an unknown code.
    "Mutation.redeemPartnerLinkCode": Row(
        "mutation($code: String!, $ref: String!) { redeemPartnerLinkCode(code: $code, partnerMemberRef: $ref) "
        "{ partnerId } }",
        outcomes(partner_own=OK, partner_other="LINK_CODE_INVALID"),
        _link_code,
    ),
    "Mutation.unlinkPartnerAccount": Row(
        'mutation { unlinkPartnerAccount(memberId: "alice", partnerId: "own") }',
        needs(P.PARTNERS_MANAGE, member_self=OK),
    ),
    "Mutation.partnerAccrue": Row(
        "mutation($input: PartnerAccrueInput!) { partnerAccrue(input: $input) { replayed } }",
        outcomes(partner_own=OK, partner_other="MEMBER_NOT_LINKED"),
        _with_key(lambda w, c, k: {"input": {"eventId": k, "memberRef": "alice-ref", "points": 10}}),
    ),
    "Mutation.partnerBurn": Row(
        "mutation($input: PartnerBurnInput!) { partnerBurn(input: $input) { replayed } }",
        outcomes(partner_own=OK, partner_other="MEMBER_NOT_LINKED"),
        _with_key(lambda w, c, k: {"input": {"eventId": k, "memberRef": "alice-ref", "points": 1}}),
    ),
    "Mutation.partnerReverse": Row(
        "mutation($input: PartnerReverseInput!) { partnerReverse(input: $input) { replayed } }",
        outcomes(partner_own=OK, partner_other="PARTNER_OPERATION_NOT_FOUND"),
        _reverse,
    ),
    "Mutation.convertPartnerPoints": Row(
        "mutation($input: ConvertPartnerPointsInput!) { convertPartnerPoints(input: $input) { replayed } }",
        outcomes(partner_own=OK, partner_other="MEMBER_NOT_LINKED"),
        _with_key(
            lambda w, c, k: {
                "input": {"eventId": k, "memberRef": "alice-ref", "direction": "PARTNER_TO_COALITION", "points": 100}
            }
        ),
    ),
    # ---- grant requests (two-person rule)
    "Query.grantRequests": Row(
        "{ grantRequests(first: 5) { edges { node { id } } } }", needs(P.GRANTS_APPROVE, P.POINTS_ADJUST)
    ),
    "Query.grantRequest": Row(
        "query($id: ID!) { grantRequest(id: $id) { id } }", needs(P.GRANTS_APPROVE, P.POINTS_ADJUST), _grant_request
    ),
    "Mutation.approveGrantRequest": Row(
        "mutation($id: ID!) { approveGrantRequest(id: $id) { status } }", needs(P.GRANTS_APPROVE), _grant_request
    ),
    "Mutation.rejectGrantRequest": Row(
        'mutation($id: ID!) { rejectGrantRequest(id: $id, reason: "no") { status } }',
        needs(P.GRANTS_APPROVE),
        _grant_request,
    ),
    # ---- the admin audit log
    "Query.adminAuditLog": Row(
        '{ adminAuditLog(filter: {actions: ["points.grant"]}, first: 5) { edges { node { seq } } } }',
        needs(P.AUDIT_READ),
    ),
    "Query.adminAuditVerification": Row("{ adminAuditVerification { intact } }", needs(P.AUDIT_READ)),
    # ---- operator analytics (docs/analytics.md)
    "Query.pointsAnalytics": Row(
        'query { pointsAnalytics(from: "2026-01-01", to: "2026-03-31") { totals { issued } } }', needs(P.ANALYTICS_READ)
    ),
    "Query.memberAnalytics": Row(
        'query { memberAnalytics(from: "2026-01-01", to: "2026-03-31") { byTier { members } } }',
        needs(P.ANALYTICS_READ),
    ),
    "Query.topGifts": Row(
        'query { topGifts(from: "2026-01-01", to: "2026-03-31") { points } }', needs(P.ANALYTICS_READ)
    ),
    "Query.partnerAnalytics": Row(
        'query { partnerAnalytics(from: "2026-01-01", to: "2026-03-31") { netPoints } }', needs(P.ANALYTICS_READ)
    ),
    "Query.analyticsSettings": Row("{ analyticsSettings { timezone } }", needs(P.ANALYTICS_READ)),
    "Mutation.updateAnalyticsSettings": Row(
        "mutation { updateAnalyticsSettings(input: {adviceLowPercent: 40}) { adviceLowPercent } }",
        needs(P.ANALYTICS_MANAGE),
    ),
    "Mutation.updateNotificationSettings": Row(
        "mutation { updateNotificationSettings(expiringReminderDays: [30, 7]) { expiringReminderDays } }",
        needs(P.NOTIFICATIONS_MANAGE),
    ),
    "Mutation.addNotificationWebhook": Row(
        'mutation { addNotificationWebhook(url: "https://hooks.example.com/loyalty") { secret } }',
        needs(P.NOTIFICATIONS_MANAGE),
    ),
    # Nothing to remove or retry in the world: the admin passes authorization and gets NOT_FOUND.
    "Mutation.removeNotificationWebhook": Row(
        'mutation { removeNotificationWebhook(id: "whk_none") { id } }',
        needs(P.NOTIFICATIONS_MANAGE, allowed="NOT_FOUND"),
    ),
    "Mutation.retryNotification": Row(
        'mutation { retryNotification(id: "none") { id } }', needs(P.NOTIFICATIONS_MANAGE, allowed="NOT_FOUND")
    ),
    "Query.campaign": Row("query($id: ID!) { campaign(id: $id) { name } }", needs(P.CAMPAIGNS_MANAGE), _fresh_campaign),
    "Query.campaigns": Row("{ campaigns(first: 5) { edges { node { name } } } }", needs(P.CAMPAIGNS_MANAGE)),
    "Mutation.createCampaign": Row(
        f"mutation {{ createCampaign(input: {CAMPAIGN_INPUT}) {{ id }} }}", needs(P.CAMPAIGNS_MANAGE)
    ),
    "Mutation.updateCampaign": Row(
        f"mutation($id: ID!) {{ updateCampaign(id: $id, input: {CAMPAIGN_INPUT}) {{ id }} }}",
        needs(P.CAMPAIGNS_MANAGE),
        _fresh_campaign,
    ),
    "Mutation.cancelCampaign": Row(
        'mutation($id: ID!) { cancelCampaign(id: $id, reason: "test") { id } }',
        needs(P.CAMPAIGNS_MANAGE),
        _fresh_campaign,
    ),
    "Query.segmentGrantPreview": Row(
        "{ segmentGrantPreview(points: 5) { members } }", needs(P.CAMPAIGNS_MANAGE)
    ),
    "Query.segmentGrant": Row(
        "query($id: ID!) { segmentGrant(id: $id) { status } }",
        needs(P.CAMPAIGNS_MANAGE, P.GRANTS_APPROVE),
        _waiting_segment_grant,
    ),
    "Query.segmentGrants": Row(
        "{ segmentGrants(first: 5) { edges { node { id } } } }", needs(P.CAMPAIGNS_MANAGE, P.GRANTS_APPROVE)
    ),
    "Mutation.startSegmentGrant": Row(
        "mutation($i: SegmentGrantInput!) { startSegmentGrant(input: $i) { id } }",
        needs(P.CAMPAIGNS_MANAGE),
        _segment_grant_input,
    ),
    "Mutation.approveSegmentGrant": Row(
        "mutation($id: ID!) { approveSegmentGrant(id: $id) { status } }",
        needs(P.GRANTS_APPROVE),
        _waiting_segment_grant,
    ),
    "Mutation.cancelSegmentGrant": Row(
        'mutation($id: ID!) { cancelSegmentGrant(id: $id, reason: "matrix") { status } }',
        needs(P.CAMPAIGNS_MANAGE, P.GRANTS_APPROVE),
        _waiting_segment_grant,
    ),
    # ---- subscriptions
    "Subscription.balanceChanged": Row(
        "subscription($memberId: String!) { balanceChanged(memberId: $memberId) { position } }",
        needs(P.MEMBERS_READ, member_self=OK),
        _alice,
    ),
    "Subscription.pointsActivity": Row("subscription { pointsActivity { id } }", needs(P.ANALYTICS_READ)),
    "Subscription.analyticsUpdated": Row("subscription { analyticsUpdated { entries } }", needs(P.ANALYTICS_READ)),
    "Subscription.tierChanged": Row(
        "subscription($memberId: String!) { tierChanged(memberId: $memberId) { memberId } }",
        needs(P.MEMBERS_READ, member_self=OK),
        _alice,
    ),
    "Subscription.redemptionUpdated": Row(
        "subscription($memberId: String!) { redemptionUpdated(memberId: $memberId) { memberId } }",
        needs(P.MEMBERS_READ, member_self=OK),
        _alice,
    ),
    "Subscription.giftStockChanged": Row(
        "subscription($giftId: String!) { giftStockChanged(giftId: $giftId) { giftId } }",
        PUBLIC,
        lambda w, c: fixed(giftId=w.gift_id)(w, c),
    ),
}


# ---- coupons (issue 14 §2): pools need catalog:manage; markCouponUsed the payments service or shop:backend
CATALOG_MANAGERS = needs(P.CATALOG_MANAGE)


async def _coupon_gift(world: World) -> str:
    """A VIRTUAL gift with a pool of generated codes, made once per world."""
    if not getattr(world, "coupon_gift_id", ""):
        gift = await create_gift(world.gql, world.admin, listed=True, stock=0, points=100, kind="VIRTUAL")
        gift_id = gift["id"]
        await world.gql.ok(
            'mutation($g: String!) { generateCouponCodes(giftId: $g, count: 200, idempotencyKey: "setup") { added } }',
            {"g": gift_id},
            token=world.admin,
        )
        world.coupon_gift_id = gift_id  # type: ignore[attr-defined]
    return str(world.coupon_gift_id)  # type: ignore[attr-defined]


async def _pool(world: World, caller: str) -> dict[str, Any]:
    return {"g": await _coupon_gift(world), "key": world.key(caller)}


async def _issued_code(world: World, caller: str) -> dict[str, Any]:
    """A code a fresh coupon order gave alice, as her storefront would report it used."""
    gift_id = await _coupon_gift(world)
    placed = await world.gql.ok(
        "mutation($input: RedeemGiftInput!) { redeemGift(input: $input) { id } }",
        {"input": {"memberId": world.alice, "giftId": gift_id, "idempotencyKey": world.key("coupon")}},
        token=world.admin,
    )
    order = await world.gql.ok(
        "query($id: ID!) { redemption(id: $id) { coupons { code } } }",
        {"id": placed["redeemGift"]["id"]},
        token=world.admin,
    )
    return {"code": order["redemption"]["coupons"][0]["code"], "ref": world.key(caller)}


MATRIX.update(
    {
        "Query.couponPool": Row(
            "query($g: String!) { couponPool(giftId: $g) { counts { total } } }", CATALOG_MANAGERS, _pool
        ),
        "Mutation.importCouponCodes": Row(
            "mutation($g: String!, $key: String!) { importCouponCodes(giftId: $g, codes: [$key]) { added } }",
            CATALOG_MANAGERS,
            _pool,
        ),
        "Mutation.generateCouponCodes": Row(
            "mutation($g: String!, $key: String!) "
            "{ generateCouponCodes(giftId: $g, count: 2, idempotencyKey: $key) { added } }",
            CATALOG_MANAGERS,
            _pool,
        ),
        "Mutation.voidCouponCodes": Row(
            'mutation($g: String!, $key: String!) { voidCouponCodes(giftId: $g, codes: [$key], reason: "leak") '
            "{ notFound } }",
            CATALOG_MANAGERS,
            _pool,
        ),
        "Mutation.setCouponCancelWindow": Row(
            "mutation($g: String!) { setCouponCancelWindow(giftId: $g, cancelWindowMinutes: 30) { giftId } }",
            CATALOG_MANAGERS,
            _pool,
        ),
        "Mutation.markCouponUsed": Row(
            'mutation($code: String!, $ref: String!) { markCouponUsed(code: $code, memberId: "alice", '
            "reference: $ref) { reference } }",
            needs(P.SHOP_BACKEND, payments=OK),
            _issued_code,
        ),
    }
)


def schema_operations() -> set[str]:
    names = set()
    for root in (schema._schema.query_type, schema._schema.mutation_type, schema._schema.subscription_type):
        if root is not None:
            names.update(f"{root.name}.{field_name}" for field_name in root.fields)
    return names


def test_every_operation_has_a_row_and_every_row_an_operation() -> None:
    operations = schema_operations()
    missing = sorted(operations - MATRIX.keys())
    stale = sorted(MATRIX.keys() - operations)
    assert not missing, f"operations without a row in tests/api/test_role_matrix.py MATRIX: {missing}"
    assert not stale, f"rows for operations the schema no longer has: {stale}"


def test_every_row_names_every_caller_and_every_role_has_a_caller() -> None:
    incomplete = {op: sorted(set(CALLER_NAMES) - row.expect.keys()) for op, row in MATRIX.items()}
    assert not {op: lacking for op, lacking in incomplete.items() if lacking}
    roles_without_caller = set(Role) - {caller.role for caller in CALLERS}
    assert not roles_without_caller, f"add a Caller (and a column to every row) for roles {roles_without_caller}"


def test_staff_outcomes_follow_the_permission_table() -> None:
    """A staff caller is refused exactly when its role lacks the row's permission: a row that lets
    staff in without declaring the permission (``outcomes(admin=OK)``) fails here."""
    wrong = {}
    for operation, row in MATRIX.items():
        expect = row.expect
        permissions = getattr(expect, "permissions", ())
        if getattr(expect, "public", False):
            continue
        for caller in STAFF_CALLERS:
            holds = not permissions_of(caller.role).isdisjoint(permissions)
            if (expect[caller.name] != FORBIDDEN) != holds:
                wrong[f"{operation} as {caller.name}"] = f"{expect[caller.name]} but permissions {permissions}"
    assert not wrong, f"use needs(Permission.X, ...) for staff operations: {wrong}"


OWN_BEHALF = {
    ANONYMOUS: "anyone",
    MEMBER_SELF: "the member",
    MEMBER_OTHER: "the member",
    PARTNER_OWN: "a partner",
    PARTNER_OTHER: "a partner",
    PAYMENTS: "the payments service",
}
ROLES_DOC = Path(__file__).resolve().parents[2] / "docs" / "roles.md"


def operations_table() -> list[str]:
    """docs/roles.md's operations table, as the matrix says it must read (one line per operation)."""
    lines = []
    for operation, row in sorted(MATRIX.items()):
        expect = row.expect
        permissions = getattr(expect, "permissions", ())
        if getattr(expect, "public", False):
            staff = "anyone"
        else:
            staff = " or ".join(f"`{p.value}`" for p in permissions) or "—"
        others = {label for name, label in OWN_BEHALF.items() if expect[name] not in (FORBIDDEN, UNAUTHENTICATED)}
        lines.append(f"| `{operation}` | {staff} | {', '.join(sorted(others)) or '—'} |")
    return lines


def test_the_docs_operations_table_is_the_matrix() -> None:
    text = ROLES_DOC.read_text()
    table = text.split("<!-- operations-table")[1].split("<!-- /operations-table -->")[0]
    documented = {line for line in table.splitlines() if line.startswith("| `")}
    expected = set(operations_table())
    missing, stale = sorted(expected - documented), sorted(documented - expected)
    assert not missing and not stale, (
        "docs/roles.md operations table differs from the matrix; lines to add:\n"
        + "\n".join(missing)
        + "\nlines to remove:\n"
        + "\n".join(stale)
    )


def _code(errors: list[dict[str, Any]] | None) -> str:
    if not errors:
        return OK
    return str((errors[0].get("extensions") or {}).get("code", errors[0].get("message")))


async def _principal(world: World, caller: str) -> Principal | None:
    from gateway.web.authenticate import authenticate

    credentials = world.credentials[caller]
    headers = {}
    if "token" in credentials:
        headers["authorization"] = f"Bearer {credentials['token']}"
    if "api_key" in credentials:
        headers["x-api-key"] = credentials["api_key"]
    return await authenticate(headers, db=world.services.db, jwt_secret=world.services.jwt_secret)


async def _subscription_outcome(world: World, caller: str, row: Row, variables: dict[str, Any]) -> str:
    from gateway.web.graphql_view import SocketContext

    context = SocketContext(services=world.services, principal=await _principal(world, caller))
    result = await subscribe(schema._schema, parse(row.document), context_value=context, variable_values=variables)
    if isinstance(result, ExecutionResult):
        return _code([error.formatted for error in result.errors or []])
    await result.aclose()  # type: ignore[attr-defined]
    return OK


@pytest.mark.parametrize("operation", sorted(MATRIX))
async def test_role_matrix(operation: str, services: Services, gql: GraphQLClient) -> None:
    row = MATRIX[operation]
    world = await build_world(services, gql)
    actual: dict[str, str] = {}
    for caller in CALLER_NAMES:
        variables = await row.variables(world, caller)
        if operation.startswith("Subscription."):
            actual[caller] = await _subscription_outcome(world, caller, row, variables)
        else:
            body = await gql(row.document, variables, **world.credentials[caller])
            actual[caller] = _code(body.get("errors"))
    wrong = {
        caller: f"expected {row.expect[caller]}, got {actual[caller]}"
        for caller in CALLER_NAMES
        if actual[caller] != row.expect[caller]
    }
    assert not wrong, f"{operation}: {wrong}"
