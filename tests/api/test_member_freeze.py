"""Freezing a member through GraphQL: nothing earns or spends, what must still happen happens."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.core.auth import Principal, Role
from gateway.features.audit import audit_all
from gateway.features.expiry import expire_points
from tests.conftest import token
from tests.support.catalog_helpers import CANCEL, ELIGIBILITY, available, create_gift, redeem
from tests.support.partner_helpers import add_partner
from tests.support.points_helpers import DEDUCT, GRANT, PURCHASE, UPDATE_PROGRAM, purchase, refund

FREEZE = "mutation($id: ID!, $r: String!) { freezeMember(memberId: $id, reason: $r) { id status freezeReason } }"
UNFREEZE = "mutation($id: ID!, $r: String!) { unfreezeMember(memberId: $id, reason: $r) { id status freezeReason } }"
ACCRUE = "mutation($input: PartnerAccrueInput!) { partnerAccrue(input: $input) { replayed } }"
BURN = "mutation($input: PartnerBurnInput!) { partnerBurn(input: $input) { replayed } }"
CHECK_IN = "mutation($id: ID!) { checkIn(memberId: $id) { points } }"
STATUS = "query($id: ID!) { member(id: $id) { status freezeReason points { available held } } }"


@pytest.fixture
async def ann(gql, admin, services):
    """ann: SENIOR with 3,800 available points (a ¥3,800 purchase, with no return window)."""
    await gql.ok(UPDATE_PROGRAM, {"input": {"pendingDays": 0}}, token=admin)
    await purchase(gql, admin, "ann", "o-1", 380_000)
    return "ann"


async def test_a_frozen_member_neither_earns_nor_spends_anywhere(gql, admin, services, db, ann):
    own = await add_partner(services, "own")
    await services.partner_links.link(Principal(Role.ADMIN, "setup"), "ann", "own", "ann-ref")
    gift = (await create_gift(gql, admin, points=100, stock=5))["id"]
    before = await available(services, "ann")
    frozen = await gql.ok(FREEZE, {"id": "ann", "r": "chargeback under review"}, token=admin)
    assert frozen["freezeMember"] == {"id": "ann", "status": "FROZEN", "freezeReason": "chargeback under review"}

    attempts = [
        (PURCHASE, {"input": {"memberId": "ann", "orderId": "o-2", "amount": 1000, "idempotencyKey": "k2"}}, {}),
        (GRANT, {"input": {"memberId": "ann", "points": 5, "reason": "x", "idempotencyKey": "g1"}}, {}),
        (
            DEDUCT,
            {
                "input": {
                    "memberId": "ann",
                    "orderId": "o-3",
                    "orderAmount": 10_000,
                    "points": 100,
                    "idempotencyKey": "d1",
                }
            },
            {},
        ),
        (ACCRUE, {"input": {"eventId": "e-1", "memberRef": "ann-ref", "points": 10}}, {"api_key": own.api_key}),
        (BURN, {"input": {"eventId": "e-2", "memberRef": "ann-ref", "points": 10}}, {"api_key": own.api_key}),
        (CHECK_IN, {"id": "ann"}, {"token": token(Role.MEMBER, "ann")}),
    ]
    for document, variables, auth in attempts:
        assert await gql.error_code(document, variables, **(auth or {"token": admin})) == "MEMBER_FROZEN", document
    body = await redeem(gql, token(Role.MEMBER, "ann"), "ann", gift, "r-1")
    assert body["errors"][0]["extensions"]["code"] == "MEMBER_FROZEN"
    assert await available(services, "ann") == before

    # support sees why; the member sees the status only
    support = token(Role.SUPPORT, "cs-1")
    assert (await gql.ok(STATUS, {"id": "ann"}, token=support))["member"]["freezeReason"] == "chargeback under review"
    mine = (await gql.ok(STATUS, {"id": "ann"}, token=token(Role.MEMBER, "ann")))["member"]
    assert mine["status"] == "FROZEN" and mine["freezeReason"] is None

    thawed = await gql.ok(UNFREEZE, {"id": "ann", "r": "chargeback resolved"}, token=admin)
    assert thawed["unfreezeMember"] == {"id": "ann", "status": "ACTIVE", "freezeReason": None}
    await gql.ok(ACCRUE, {"input": {"eventId": "e-1", "memberRef": "ann-ref", "points": 10}}, api_key=own.api_key)
    assert await available(services, "ann") == before + 10
    entries = await db["adminAudit"].find({"targetId": "ann"}).sort("seq", 1).to_list()
    assert [(e["action"], e["reason"]) for e in entries] == [
        ("member.freeze", "chargeback under review"),
        ("member.unfreeze", "chargeback resolved"),
    ]
    assert entries[1]["details"]["freezeReason"] == "chargeback under review"
    assert await audit_all(db) == []


async def test_a_frozen_members_storefront_says_frozen_instead_of_can_redeem(gql, admin, ann):
    """Before this, gifts(memberId:) answered canRedeem: true for a frozen member whose redemption
    then failed with MEMBER_FROZEN: the storefront and the order must never disagree."""
    gift = (await create_gift(gql, admin, points=100, stock=5))["id"]
    member = token(Role.MEMBER, "ann")
    page = "query { gifts(memberId: \"ann\", first: 5) { edges { node { eligibility { canRedeem reason } } } } }"
    await gql.ok(FREEZE, {"id": "ann", "r": "fraud check"}, token=admin)
    shown = await gql.ok(ELIGIBILITY, {"id": gift, "memberId": "ann"}, token=member)
    assert shown["gift"]["eligibility"] == {"canRedeem": False, "reason": "MEMBER_FROZEN"}
    listed = (await gql.ok(page, token=member))["gifts"]["edges"]
    assert [e["node"]["eligibility"] for e in listed] == [{"canRedeem": False, "reason": "MEMBER_FROZEN"}]
    assert (await redeem(gql, member, "ann", gift, "r-1"))["errors"][0]["extensions"]["code"] == "MEMBER_FROZEN"
    await gql.ok(UNFREEZE, {"id": "ann", "r": "cleared"}, token=admin)
    shown = await gql.ok(ELIGIBILITY, {"id": gift, "memberId": "ann"}, token=member)
    assert shown["gift"]["eligibility"] == {"canRedeem": True, "reason": None}


async def test_refunds_cancellations_and_expiry_go_on_while_frozen(gql, admin, services, db, clock, ann):
    gift = (await create_gift(gql, admin, points=100, stock=5))["id"]
    placed = await redeem(gql, token(Role.MEMBER, "ann"), "ann", gift, "r-1")
    assert "errors" not in placed, placed
    order = placed["data"]["redeemGift"]["id"]
    await gql.ok(FREEZE, {"id": "ann", "r": "fraud check"}, token=admin)

    cancelled = await gql.ok(CANCEL, {"id": order}, token=admin)  # the points come back
    assert cancelled["cancelRedemption"]["status"] == "CANCELLED"
    assert await available(services, "ann") == 3_800
    refunded = await refund(gql, admin, "ann", "o-1", 100_000, "ref-1")  # a refund still takes points back
    assert refunded["points"] == 1_000
    assert await available(services, "ann") == 2_800

    clock.advance(timedelta(days=400))  # a freeze does not extend validity
    report = await expire_points(db, services.ledger)
    assert report.expired_points == 2_800
    assert await available(services, "ann") == 0
    assert await audit_all(db) == []


async def test_freezing_releases_holds_in_flight(gql, admin, services, db, ann):
    await gql.ok(
        DEDUCT,
        {
            "input": {
                "memberId": "ann",
                "orderId": "till-7",
                "orderAmount": 10_000,
                "points": 500,
                "idempotencyKey": "d-7",
            }
        },
        token=admin,
    )
    gift = (await create_gift(gql, admin, points=200, cash=500, stock=3))["id"]
    unpaid = await redeem(gql, token(Role.MEMBER, "ann"), "ann", gift, "r-2", cash=500)
    assert unpaid["data"]["redeemGift"]["status"] == "AWAITING_PAYMENT"
    held = (await gql.ok(STATUS, {"id": "ann"}, token=admin))["member"]["points"]
    assert held == {"available": 3_100, "held": 700}

    await gql.ok(FREEZE, {"id": "ann", "r": "card reported stolen"}, token=admin)
    released = (await gql.ok(STATUS, {"id": "ann"}, token=admin))["member"]["points"]
    assert released == {"available": 3_800, "held": 0}
    order = await db["redemptions"].find_one({"_id": unpaid["data"]["redeemGift"]["id"]})
    assert order["status"] == "CANCELLED"
    assert (await db["gifts"].find_one({"_id": gift}))["stock"] == 3
    # the till that held the points now posts the purchase: refused, and nothing is spent
    purchase_at_till = {"input": {"memberId": "ann", "orderId": "till-7", "amount": 10_000, "idempotencyKey": "p-7"}}
    assert await gql.error_code(PURCHASE, purchase_at_till, token=admin) == "MEMBER_FROZEN"
    entry = await db["adminAudit"].find_one({"action": "member.freeze"})
    assert entry["details"] == {"voidedCheckoutHolds": 1, "cancelledUnpaidOrders": 1}
    assert await audit_all(db) == []


async def test_freeze_refusals(gql, admin, ann):
    assert await gql.error_code(FREEZE, {"id": "ann", "r": "  "}, token=admin) == "BAD_USER_INPUT"
    assert await gql.error_code(UNFREEZE, {"id": "ann", "r": "why"}, token=admin) == "INVALID_STATE"
    assert await gql.error_code(FREEZE, {"id": "nobody", "r": "why"}, token=admin) == "MEMBER_NOT_FOUND"
    await gql.ok(FREEZE, {"id": "ann", "r": "first"}, token=admin)
    assert await gql.error_code(FREEZE, {"id": "ann", "r": "second"}, token=admin) == "INVALID_STATE"
    for role in (Role.SUPPORT, Role.MARKETING, Role.MEMBER):
        assert await gql.error_code(UNFREEZE, {"id": "ann", "r": "x"}, token=token(role, "ann")) == "FORBIDDEN"
