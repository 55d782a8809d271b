"""Member notifications end to end: configured through GraphQL, recorded by the scan, delivered to a
real HTTP receiver with a verifiable signature, retried with backoff, dead-lettered, retried by hand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from gateway.core.clock import FrozenClock
from gateway.services import Services
from tests.conftest import GraphQLClient
from tests.support.catalog_helpers import create_gift, member_with, redeem
from tests.support.ledger_helpers import earn
from tests.support.webhook_receiver import Receiver, webhook_receiver

YEAR = timedelta(days=365)  # the default program's rolling expiry


async def register(gql: GraphQLClient, admin: str, member_id: str) -> None:
    await gql.ok(
        "mutation($input: RegisterMemberInput!) { registerMember(input: $input) { id } }",
        {"input": {"id": member_id, "displayName": member_id.title(), "email": f"{member_id}@example.com"}},
        token=admin,
    )


async def add_webhook(gql: GraphQLClient, admin: str, receiver: Receiver, **extra: Any) -> str:
    body = await gql.ok(
        'mutation($url: String!) { addNotificationWebhook(url: $url, description: "crm") { webhook { id } secret } }',
        {"url": receiver.url, **extra},
        token=admin,
    )
    receiver.secret = body["addNotificationWebhook"]["secret"]
    return str(body["addNotificationWebhook"]["webhook"]["id"])


async def run(services: Services) -> tuple[Any, Any]:
    async with httpx.AsyncClient() as http:
        scanned = await services.notifications.scan()
        sent = await services.notifications.dispatch(http, None, owner="test")
    return scanned, sent


async def outbox(gql: GraphQLClient, admin: str, status: str | None = None) -> list[dict[str, Any]]:
    data = await gql.ok(
        "query($s: NotificationStatus) { notifications(first: 50, status: $s) "
        "{ edges { node { id reason memberId status attempts lastErrors { target error } data } } } }",
        {"s": status},
        token=admin,
    )
    return [edge["node"] for edge in data["notifications"]["edges"]]


async def test_expiry_reminders_are_sent_once_per_threshold_signed_and_carry_the_contact(
    services: Services, gql: GraphQLClient, admin: str, clock: FrozenClock
) -> None:
    await register(gql, admin, "ann")
    await earn(services.ledger, "ann", 500)
    await gql.ok(
        "mutation { updateNotificationSettings(expiringReminderDays: [7, 1]) { expiringReminderDays } }", token=admin
    )
    async with webhook_receiver() as receiver:
        await add_webhook(gql, admin, receiver)

        clock.advance(YEAR - timedelta(days=8))  # nothing crossed yet
        scanned, _ = await run(services)
        assert scanned.recorded == {} and receiver.deliveries == []

        clock.advance(timedelta(days=2))  # 6 days left: the 7-day reminder
        scanned, sent = await run(services)
        assert scanned.recorded == {"POINTS_EXPIRING": 1} and sent.delivered == 1
        [first] = receiver.deliveries
        assert first["verified"], "the signature must verify with the secret shown once"
        assert first["headers"]["x-loyalty-event"] == "POINTS_EXPIRING"
        event = first["event"]
        assert event["member"] == {
            "id": "ann",
            "displayName": "Ann",
            "email": "ann@example.com",
            "phone": None,
            "tier": event["member"]["tier"],
        }
        assert event["data"]["points"] == 500 and event["data"]["daysBefore"] == 7

        scanned, sent = await run(services)  # a second scan, as another replica would run it
        assert scanned.recorded == {} and sent.delivered == 0 and len(receiver.deliveries) == 1

        clock.advance(timedelta(days=5, hours=12))  # half a day left: the 1-day reminder
        await run(services)
        assert [d["event"]["data"]["daysBefore"] for d in receiver.deliveries] == [7, 1]

    delivered = await outbox(gql, admin, "DELIVERED")
    assert sorted(n["id"] for n in delivered) == sorted(d["event"]["id"] for d in receiver.deliveries)


async def test_a_late_scan_sends_only_the_most_urgent_reminder(
    services: Services, gql: GraphQLClient, admin: str, clock: FrozenClock
) -> None:
    await register(gql, admin, "ben")
    await earn(services.ledger, "ben", 80)
    async with webhook_receiver() as receiver:
        await add_webhook(gql, admin, receiver)
        clock.advance(YEAR - timedelta(hours=12))  # the 30-, 7- and 1-day thresholds all crossed at once
        scanned, _ = await run(services)
        assert scanned.recorded == {"POINTS_EXPIRING": 1} and scanned.superseded == 2
        assert [d["event"]["data"]["daysBefore"] for d in receiver.deliveries] == [1]
    superseded = await outbox(gql, admin, "SUPERSEDED")
    assert len(superseded) == 2 and all(n["attempts"] == 0 for n in superseded)


async def test_failed_deliveries_back_off_then_dead_letter_and_an_admin_retries(
    services: Services, gql: GraphQLClient, admin: str, clock: FrozenClock
) -> None:
    services.notifications.max_attempts = 3
    await register(gql, admin, "cat")
    await earn(services.ledger, "cat", 120)
    async with webhook_receiver() as receiver:
        await add_webhook(gql, admin, receiver)
        receiver.status = 500
        clock.advance(YEAR - timedelta(days=3))
        _, sent = await run(services)
        assert sent.retried == 1 and len(receiver.deliveries) == 1

        _, sent = await run(services)  # not due yet: the first retry waits 30 s
        assert sent.retried == 0 and len(receiver.deliveries) == 1
        clock.advance(timedelta(seconds=30))
        _, sent = await run(services)
        assert sent.retried == 1 and len(receiver.deliveries) == 2
        clock.advance(timedelta(seconds=59))  # the second retry waits 60 s
        assert (await run(services))[1].retried == 0
        clock.advance(timedelta(seconds=1))
        _, sent = await run(services)
        assert sent.dead == 1 and len(receiver.deliveries) == 3

        [dead] = await outbox(gql, admin, "DEAD")
        assert dead["attempts"] == 3 and dead["lastErrors"][0]["error"] == "http status 500"

        receiver.status = 204
        retried = await gql.ok(
            "mutation($id: ID!) { retryNotification(id: $id) { status attempts } }", {"id": dead["id"]}, token=admin
        )
        assert retried["retryNotification"] == {"status": "PENDING", "attempts": 0}
        _, sent = await run(services)
        assert sent.delivered == 1 and receiver.deliveries[-1]["answered"] == 204
    assert await outbox(gql, admin, "DEAD") == []


async def test_tier_upgrades_and_shipped_redemptions_are_notified(
    services: Services, gql: GraphQLClient, admin: str
) -> None:
    await member_with(services, "dan", points=5_000, tier="SENIOR")
    async with webhook_receiver() as receiver:
        await add_webhook(gql, admin, receiver)
        await gql.ok(
            "mutation($input: RecordPurchaseInput!) { recordPurchase(input: $input) { points } }",
            {"input": {"memberId": "dan", "orderId": "o-1", "amount": 250_000, "idempotencyKey": "o-1"}},
            token=admin,
        )
        gift = await create_gift(gql, admin, listed=True, stock=5, points=100)
        order = (await redeem(gql, admin, "dan", gift["id"], "r-1"))["data"]["redeemGift"]["id"]
        await gql.ok(
            'mutation($id: ID!) { fulfillRedemption(id: $id, carrier: "SF", trackingNumber: "SF123") { id } }',
            {"id": order},
            token=admin,
        )
        scanned, sent = await run(services)
        assert scanned.recorded == {"TIER_UP": 1, "REDEMPTION_SHIPPED": 1} and sent.delivered == 2
        events = {d["event"]["reason"]: d["event"] for d in receiver.deliveries}
        assert events["TIER_UP"]["data"]["fromTier"] == "SENIOR" and events["TIER_UP"]["data"]["toTier"] == "VIP"
        assert events["REDEMPTION_SHIPPED"]["data"]["orderId"] == order
        assert events["REDEMPTION_SHIPPED"]["data"]["trackingNumber"] == "SF123"
        assert (await run(services))[0].recorded == {}


async def test_a_webhook_filters_reasons_and_a_removed_one_is_skipped(
    services: Services, gql: GraphQLClient, admin: str, clock: FrozenClock
) -> None:
    await register(gql, admin, "eve")
    await earn(services.ledger, "eve", 10)
    async with webhook_receiver() as tiers_only, webhook_receiver() as removed:
        await gql.ok(
            "mutation($url: String!) { addNotificationWebhook(url: $url, reasons: [TIER_UP, TIER_DOWN]) { secret } }",
            {"url": tiers_only.url},
            token=admin,
        )
        removed_id = await add_webhook(gql, admin, removed)
        clock.advance(YEAR - timedelta(days=2))
        await services.notifications.scan()
        await gql.ok(
            "mutation($id: ID!) { removeNotificationWebhook(id: $id) { active } }", {"id": removed_id}, token=admin
        )
        async with httpx.AsyncClient() as http:
            sent = await services.notifications.dispatch(http, None, owner="test")
        assert sent.delivered == 1 and tiers_only.deliveries == [] and removed.deliveries == []


async def test_webhooks_must_be_https_and_settings_are_validated(gql: GraphQLClient, admin: str) -> None:
    add = "mutation($url: String!) { addNotificationWebhook(url: $url) { secret } }"
    assert await gql.error_code(add, {"url": "http://hooks.example.com/x"}, token=admin) == "BAD_USER_INPUT"
    assert await gql.error_code(add, {"url": "https://user:pw@hooks.example.com/x"}, token=admin) == "BAD_USER_INPUT"
    assert await gql.error_code(add, {"url": "ftp://hooks.example.com"}, token=admin) == "BAD_USER_INPUT"
    update = "mutation($d: [Int!]!) { updateNotificationSettings(expiringReminderDays: $d) { expiringReminderDays } }"
    for days in ([0], [400], [7, 7], [1, 2, 3, 4, 5, 6]):
        assert await gql.error_code(update, {"d": days}, token=admin) == "BAD_USER_INPUT"
    data = await gql.ok(update, {"d": [1, 30, 7]}, token=admin)
    assert data["updateNotificationSettings"]["expiringReminderDays"] == [30, 7, 1]
    hooks = await gql.ok("{ notificationWebhooks { id } }", token=admin)
    assert hooks["notificationWebhooks"] == []
