"""Every staff action that changes something leaves exactly one admin-audit entry; a refused one none.

Generated from the schema and the role matrix: each mutation is either ``AUDITED`` (its action and
target kind) or ``NOT_AUDITED`` (with the reason: members, partners and the shop's backend acting on
their own behalf are recorded by their own records, the ledger and partner operations). Each audited
mutation runs, through GraphQL, as every staff caller with the matrix's variables: one allowed
entry per allowed call (its action, target kind and actor), nothing at all for a refused one.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.domain.admin_audit import AuditAction
from gateway.features.admin_audit import AuditQuery
from gateway.services import Services
from resolvers.schema import schema
from tests.api.test_role_matrix import (
    CALLERS,
    FORBIDDEN,
    MATRIX,
    OK,
    PAYMENTS,
    STAFF_CALLERS,
    World,
    build_world,
)
from tests.conftest import GraphQLClient

AUDITED: dict[str, tuple[AuditAction, str]] = {
    "Mutation.grantPoints": (AuditAction.POINTS_GRANT, "member"),
    "Mutation.approveGrantRequest": (AuditAction.GRANT_APPROVED, "grantRequest"),
    "Mutation.rejectGrantRequest": (AuditAction.GRANT_REJECTED, "grantRequest"),
    "Mutation.updateEarningRules": (AuditAction.CONFIG_CHANGE, "program"),
    "Mutation.updateProgram": (AuditAction.CONFIG_CHANGE, "program"),
    "Mutation.updateTiers": (AuditAction.CONFIG_CHANGE, "program"),
    "Mutation.updateAnalyticsSettings": (AuditAction.CONFIG_CHANGE, "program"),
    "Mutation.updateNotificationSettings": (AuditAction.NOTIFICATION_SETTINGS, "notifications"),
    "Mutation.addNotificationWebhook": (AuditAction.WEBHOOK_ADD, "webhook"),
    "Mutation.removeNotificationWebhook": (AuditAction.WEBHOOK_REMOVE, "webhook"),
    "Mutation.retryNotification": (AuditAction.NOTIFICATION_RETRY, "notification"),
    "Mutation.createGift": (AuditAction.GIFT_CREATE, "gift"),
    "Mutation.updateGift": (AuditAction.GIFT_UPDATE, "gift"),
    "Mutation.restockGift": (AuditAction.GIFT_RESTOCK, "gift"),
    "Mutation.listGift": (AuditAction.GIFT_LIST, "gift"),
    "Mutation.unlistGift": (AuditAction.GIFT_UNLIST, "gift"),
    "Mutation.scheduleGift": (AuditAction.GIFT_SCHEDULE, "gift"),
    "Mutation.setGiftOffer": (AuditAction.GIFT_OFFER_SET, "gift"),
    "Mutation.clearGiftOffer": (AuditAction.GIFT_OFFER_CLEAR, "gift"),
    "Mutation.deleteGift": (AuditAction.GIFT_DELETE, "gift"),
    "Mutation.fulfillRedemption": (AuditAction.ORDER_FULFIL, "order"),
    "Mutation.cancelRedemption": (AuditAction.ORDER_CANCEL, "order"),
    "Mutation.confirmRedemptionPayment": (AuditAction.PAYMENT_CONFIRM, "order"),
    "Mutation.createPartner": (AuditAction.PARTNER_CREATE, "partner"),
    "Mutation.updatePartner": (AuditAction.PARTNER_UPDATE, "partner"),
    "Mutation.rotatePartnerKey": (AuditAction.PARTNER_KEY_ROTATE, "partner"),
    "Mutation.linkPartnerAccount": (AuditAction.PARTNER_LINK, "member"),
    "Mutation.unlinkPartnerAccount": (AuditAction.PARTNER_UNLINK, "member"),
    "Mutation.createCampaign": (AuditAction.CAMPAIGN_CHANGE, "campaign"),
    "Mutation.updateCampaign": (AuditAction.CAMPAIGN_CHANGE, "campaign"),
    "Mutation.cancelCampaign": (AuditAction.CAMPAIGN_CHANGE, "campaign"),
    "Mutation.refreshMemberSegments": (AuditAction.MEMBER_SEGMENTS_REFRESH, "member_segments"),
    "Mutation.freezeMember": (AuditAction.MEMBER_FREEZE, "member"),
    "Mutation.unfreezeMember": (AuditAction.MEMBER_UNFREEZE, "member"),
    "Mutation.exportMemberData": (AuditAction.MEMBER_EXPORT, "member"),
    "Mutation.eraseMemberData": (AuditAction.MEMBER_ERASE, "member"),
    "Mutation.mergeMembers": (AuditAction.MEMBER_MERGE, "member"),
    "Mutation.unmergeMembers": (AuditAction.MEMBER_UNMERGE, "member"),
    "Mutation.startSegmentGrant": (AuditAction.SEGMENT_GRANT, "segmentGrant"),
    "Mutation.approveSegmentGrant": (AuditAction.SEGMENT_GRANT, "segmentGrant"),
    "Mutation.cancelSegmentGrant": (AuditAction.SEGMENT_GRANT, "segmentGrant"),
    "Mutation.importCouponCodes": (AuditAction.COUPON_POOL_CHANGE, "coupon_pool"),
    "Mutation.generateCouponCodes": (AuditAction.COUPON_POOL_CHANGE, "coupon_pool"),
    "Mutation.voidCouponCodes": (AuditAction.COUPON_POOL_CHANGE, "coupon_pool"),
    "Mutation.setCouponCancelWindow": (AuditAction.COUPON_POOL_CHANGE, "coupon_pool"),
    "Mutation.markCouponUsed": (AuditAction.COUPON_POOL_CHANGE, "coupon_pool"),  # staff only, not the payments role
}
# The payments service's own calls that are audited too (it confirms payments like an operator would).
AUDITED_FOR_PAYMENTS = {"Mutation.confirmRedemptionPayment"}
SHOP = "the shop's backend (shop:backend) or the member on itself: a business event, kept in the ledger and orders"
PARTNER = "a partner acting on its linked members: kept as partner operations"
NOT_AUDITED: dict[str, str] = {
    "Mutation.registerMember": SHOP,
    "Mutation.updateProfile": SHOP,
    "Mutation.recordPaidMembership": SHOP,
    "Mutation.endPaidMembership": SHOP,
    "Mutation.recordPurchase": SHOP,
    "Mutation.refundPurchase": SHOP,
    "Mutation.recordBehaviour": SHOP,
    "Mutation.checkIn": SHOP,
    "Mutation.deductPointsAtCheckout": SHOP,
    "Mutation.cancelCheckoutDeduction": SHOP,
    "Mutation.consumeBenefit": SHOP,
    "Mutation.redeemGift": SHOP,
    "Mutation.createPartnerLinkCode": "the member's own consent code (kept in the link history when redeemed)",
    "Mutation.redeemPartnerLinkCode": PARTNER,
    "Mutation.partnerAccrue": PARTNER,
    "Mutation.partnerBurn": PARTNER,
    "Mutation.partnerReverse": PARTNER,
    "Mutation.convertPartnerPoints": PARTNER,
}


def schema_mutations() -> set[str]:
    return {f"Mutation.{name}" for name in schema._schema.mutation_type.fields}


def test_every_mutation_is_audited_or_says_why_not() -> None:
    mutations = schema_mutations()
    undeclared = sorted(mutations - AUDITED.keys() - NOT_AUDITED.keys())
    assert not undeclared, f"add these to AUDITED (staff changes) or NOT_AUDITED (with why) here: {undeclared}"
    assert not AUDITED.keys() & NOT_AUDITED.keys()
    stale = sorted((AUDITED.keys() | NOT_AUDITED.keys()) - mutations)
    assert not stale, f"no longer in the schema: {stale}"
    no_staff = sorted(op for op in AUDITED if not getattr(MATRIX[op].expect, "permissions", ()))
    assert not no_staff, f"audited mutations no staff permission opens: {no_staff}"


async def _webhook(world: World, caller: str) -> dict[str, Any]:
    doc, _secret = await world.services.notifications.add_webhook(f"https://hooks.example.com/{caller}", "", None)
    return {"id": doc["_id"]}


async def _dead_notification(world: World, caller: str) -> dict[str, Any]:
    now = world.services.clock.now()
    notification_id = f"ntf-{world.key(caller)}"
    await world.services.db["notifications"].insert_one(
        {
            "_id": notification_id,
            "reason": "REDEMPTION_SHIPPED",
            "memberId": world.alice,
            "status": "DEAD",
            "attempts": 3,
            "createdAt": now,
            "nextAttemptAt": now,
            "claimedUntil": now,
            "data": {},
            "targets": {"webhook:x": {"status": "DEAD"}},
            "lastErrors": {"webhook:x": "http status 500"},
        }
    )
    return {"id": notification_id}


# Rows whose matrix variables leave staff nothing to change (NOT_FOUND): here they get something.
DOCUMENTS: dict[str, tuple[str, Any]] = {
    "Mutation.removeNotificationWebhook": (
        "mutation($id: ID!) { removeNotificationWebhook(id: $id) { id } }",
        _webhook,
    ),
    "Mutation.retryNotification": ("mutation($id: ID!) { retryNotification(id: $id) { id } }", _dead_notification),
}


async def _entries(services: Services) -> list[dict[str, Any]]:
    return await services.admin_audit.search(AuditQuery(), limit=1000)


@pytest.mark.parametrize("operation", sorted(AUDITED))
async def test_each_staff_change_leaves_one_entry_and_a_refused_one_none(
    operation: str, services: Services, gql: GraphQLClient
) -> None:
    action, target_kind = AUDITED[operation]
    row = MATRIX[operation]
    document, variables = DOCUMENTS.get(operation, (row.document, row.variables))
    world = await build_world(services, gql)
    roles = {c.name: c.role for c in CALLERS}
    callers = [c.name for c in STAFF_CALLERS] + ([PAYMENTS] if operation in AUDITED_FOR_PAYMENTS else [])
    allowed = 0
    for caller in callers:
        values = await variables(world, caller)
        before = await _entries(services)
        credentials = world.credentials[caller]
        if row.expect[caller] == FORBIDDEN:
            assert await gql.error_code(document, values, **credentials) == FORBIDDEN  # and nothing changed
            assert await _entries(services) == before
            continue
        assert row.expect[caller] == OK or operation in DOCUMENTS, (operation, caller)
        body = await gql(document, values, **credentials)
        assert "errors" not in body, (caller, body["errors"])
        after = await _entries(services)
        assert len(after) == len(before) + 1, (caller, after[: len(after) - len(before)])
        entry = after[0]
        assert (entry["action"], entry["targetKind"]) == (action.value, target_kind)
        role = roles[caller]
        assert role is not None and entry["actorRole"] == role.value
        allowed += 1
    assert allowed >= 1
    assert await services.admin_audit.verify() is None


async def test_a_failed_staff_change_leaves_no_entry(services: Services, gql: GraphQLClient, admin: str) -> None:
    """Refused for a reason other than the caller's role: the change and its entry roll back together."""
    await build_world(services, gql)
    before = await _entries(services)
    bad_gift = 'mutation { updateGift(id: "nope", input: {name: "x"}) { id } }'
    assert await gql.error_code(bad_gift, token=admin) == "GIFT_NOT_FOUND"
    bad_tiers = "mutation { updateTiers(tiers: []) { name } }"
    assert await gql.error_code(bad_tiers, token=admin) == "BAD_USER_INPUT"
    bad_rotate = 'mutation { rotatePartnerKey(id: "nope") { apiKey } }'
    assert await gql.error_code(bad_rotate, token=admin) == "PARTNER_NOT_FOUND"
    assert await _entries(services) == before
