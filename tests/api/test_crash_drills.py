"""Issue 13 §8: crash drills through real processes.

1. SIGKILL the gateway in the middle of 50 concurrent redemptions and 50 partner events;
   restart; the clients replay their idempotency keys; everything converges: one order
   and one partner operation per key, stock and balances exact, the audit clean.
2. Kill an (external) mongod under load: clients get SERVICE_UNAVAILABLE, never a
   stack trace or an internal error; /readyz turns 503; when mongod returns the gateway
   recovers by itself.
3. Kill and restart the Kafka broker: GraphQL never waits for it, and the balance relay
   and the partner-event consumer resume without loss.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gateway.core.auth import Role
from gateway.store.embedded_mongod import EmbeddedMongo, free_port
from tests.conftest import JWT_SECRET, token
from tests.support.gateway_process import CLI, GatewayProcess, Response, wait_until

BURST = 50
PRICE = 100
GRANT = 'mutation($id: ID!, $key: String!) { grantPoints(input: {memberId: $id, points: 10000, reason: "drill", idempotencyKey: $key}) { points } }'  # noqa: E501
REGISTER = 'mutation($id: String!) { registerMember(input: {displayName: "Drill", id: $id}) { id } }'
CREATE_GIFT = """mutation { createGift(input: {name: "Mug", category: "home", costPrice: 100, points: 100, stock: 1000})
  { id } }"""
CREATE_PARTNER = """mutation { createPartner(input: {id: "air", name: "Air", currencyName: "miles",
  rate: {partnerPoints: 1, coalitionPoints: 1}}) { apiKey } }"""
LINK = 'mutation($m: ID!, $r: String!) { linkPartnerAccount(memberId: $m, partnerId: "air", partnerMemberRef: $r) { partnerId } }'  # noqa: E501
PURCHASE = """mutation($m: ID!, $k: String!) {
  recordPurchase(input: {memberId: $m, orderId: "big", amount: 5000000, idempotencyKey: $k}) { points } }"""
REDEEM = """mutation($m: String!, $g: String!, $k: String!) {
  redeemGift(input: {memberId: $m, giftId: $g, quantity: 1, idempotencyKey: $k}) { id } }"""
ACCRUE = """mutation($e: String!, $m: String!) {
  partnerAccrue(input: {eventId: $e, memberRef: $m, points: 7}) { replayed operation { eventId } } }"""
BALANCE = 'query($id: ID!) { member(id: $id) { points { available } redemptions(first: 100) { edges { node { id } } } } }'  # noqa: E501
GRAPHQL_RESPONSE = "application/graphql-response+json"
GIFT = 'query($id: ID!) { gift(id: $id) { stock } }'


@pytest.fixture
def gateways() -> Any:
    started: list[GatewayProcess] = []
    yield started
    for gateway in started:
        gateway.stop()


def serve(gateways: list[GatewayProcess], data_dir: Path, **env: str) -> GatewayProcess:
    gateway = GatewayProcess(data_dir, {"LOYALTY_JWT_SECRET": JWT_SECRET, **env})
    gateways.append(gateway)
    return gateway.start()


def codes(response: Response) -> list[str]:
    return [e.get("extensions", {}).get("code", "?") for e in response.json().get("errors", [])]


def audit(data_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    full.update({"LOYALTY_DATA_DIR": str(data_dir), "LOYALTY_JWT_SECRET": JWT_SECRET, **(env or {})})
    return subprocess.run([*CLI, "audit"], capture_output=True, text=True, env=full, timeout=180)


def test_sigkill_mid_burst_then_replayed_keys_converge_and_the_audit_is_clean(
    tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    admin = token(Role.ADMIN)
    first = serve(gateways, tmp_path).wait_ready()
    gift = first.ok(CREATE_GIFT, token=admin)["createGift"]["id"]
    api_key = first.ok(CREATE_PARTNER, token=admin)["createPartner"]["apiKey"]
    members = [f"m{i:02d}" for i in range(BURST)]
    for member in members:
        first.ok(REGISTER, {"id": member}, token=admin)
        first.ok(GRANT, {"id": member, "key": f"grant-{member}"}, token=admin)
        first.ok(LINK, {"m": member, "r": member}, token=admin)
        first.ok(PURCHASE, {"m": member, "k": f"big-{member}"}, token=admin)  # spend enough for the mall's tier
    before = {m: first.ok(BALANCE, {"id": m}, token=admin)["member"]["points"]["available"] for m in members}

    def burst(gateway: GatewayProcess, answered: threading.Event | None) -> dict[str, str]:
        """Each client: one redemption and one partner event, each with its own key."""

        def client(member: str) -> str:
            outcome = []
            for query, variables, auth in (
                (REDEEM, {"m": member, "g": gift, "k": f"redeem-{member}"}, {"token": token(Role.MEMBER, member)}),
                (ACCRUE, {"e": f"evt-{member}", "m": member}, {"api_key": api_key}),
            ):
                for _attempt in range(1 if answered is not None else 5):  # a client retries until answered
                    try:
                        response = gateway.graphql(query, variables, **auth)
                        failed = codes(response) or ([] if response.status == 200 else [str(response.status)])
                        outcome.append(",".join(failed) or "ok")
                        break
                    except OSError as exc:
                        lost = f"lost:{type(exc).__name__}:{exc}"  # the gateway died with it in flight
                else:
                    outcome.append(lost)
                if answered is not None:
                    answered.set()
            return "/".join(outcome)

        with ThreadPoolExecutor(BURST) as pool:
            return dict(zip(members, pool.map(client, members), strict=True))

    answered = threading.Event()
    killer = threading.Thread(target=lambda: (answered.wait(60), first.kill()))
    killer.start()
    first_round = burst(first, answered)
    killer.join()
    assert any("lost" in outcome for outcome in first_round.values()), "the kill came after the burst"
    assert all(part == "ok" or part.startswith("lost") for o in first_round.values() for part in o.split("/"))

    second = serve(gateways, tmp_path).wait_ready()
    replayed = burst(second, None)  # every client retries both requests with the same keys
    assert set(replayed.values()) == {"ok/ok"}, replayed

    orders: set[str] = set()
    for member in members:
        data = second.ok(BALANCE, {"id": member}, token=admin)["member"]
        member_orders = [edge["node"]["id"] for edge in data["redemptions"]["edges"]]
        assert len(member_orders) == 1, (member, member_orders)  # never doubled, never lost
        orders.update(member_orders)
        assert data["points"]["available"] == before[member] - PRICE + 7
    assert len(orders) == BURST
    assert second.ok(GIFT, {"id": gift}, token=admin)["gift"]["stock"] == 1000 - BURST
    assert second.stop() in (0, -signal.SIGTERM)

    result = audit(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit clean" in result.stdout


def test_mongod_killed_under_load_answers_service_unavailable_and_the_gateway_recovers_by_itself(
    tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    admin = token(Role.ADMIN)
    port = free_port()
    mongo = EmbeddedMongo(tmp_path / "external", port=port)
    import asyncio

    uri = asyncio.run(mongo.start())
    try:
        gateway = serve(gateways, tmp_path / "gw", LOYALTY_MONGODB_URI=uri).wait_ready()
        gateway.ok(REGISTER, {"id": "loaded"}, token=admin)

        seen: list[tuple[int, list[str], str]] = []
        stop = threading.Event()

        def load(n: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                grant = gateway.graphql(GRANT, {"id": "loaded", "key": f"load-{n}-{i}"}, token=admin)
                seen.append((grant.status, codes(grant), grant.body.decode(errors="replace")))
                read = gateway.graphql(BALANCE, {"id": "loaded"}, token=admin, accept=GRAPHQL_RESPONSE)
                seen.append((read.status, codes(read), read.body.decode(errors="replace")))

        workers = [threading.Thread(target=load, args=(n,)) for n in range(8)]
        for worker in workers:
            worker.start()
        wait_until(lambda: len(seen) > 40, what="load before the kill")

        assert mongo.process is not None
        mongo.process.send_signal(signal.SIGKILL)
        mongo.process.wait()
        mongo.stop()  # releases the data dir: the process is already gone
        wait_until(lambda: gateway.get("/readyz").status == 503, what="/readyz to turn 503")
        during = len(seen)
        wait_until(lambda: any("SERVICE_UNAVAILABLE" in c for _, c, _ in seen[during:]), what="an outage answer")

        mongo = EmbeddedMongo(tmp_path / "external", port=port)  # mongod returns, same address
        asyncio.run(mongo.start())
        wait_until(lambda: gateway.get("/readyz").status == 200, timeout=90, what="the gateway to recover")
        after = len(seen)
        wait_until(lambda: len(seen) > after + 20, what="load after the recovery")
        stop.set()
        for worker in workers:
            worker.join(60)

        for status, error_codes, body in seen:
            assert set(error_codes) <= {"SERVICE_UNAVAILABLE"}, body
            assert "Traceback" not in body and "INTERNAL_SERVER_ERROR" not in body
            assert status in (200, 503), body
            if status == 503:
                assert error_codes == ["SERVICE_UNAVAILABLE"]
        assert all(not c for _, c, _ in seen[after + 10 :]), "requests still failing after the recovery"
        assert "Traceback" not in gateway.output()
        assert gateway.stop() in (0, -signal.SIGTERM)
        result = audit(tmp_path / "gw", {"LOYALTY_MONGODB_URI": uri})
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        mongo.stop()


def _kafka_settings(bootstrap: str) -> Any:
    from gateway.core.settings import Settings

    return Settings(kafka_bootstrap_servers=bootstrap, kafka_idempotent_producer=False)  # type: ignore[call-arg]


async def _ensure_topics(bootstrap: str) -> None:
    from gateway.workers.partner_consumer import ensure_topics

    settings = _kafka_settings(bootstrap)
    await ensure_topics(settings, settings.kafka_partner_topic, settings.kafka_balance_topic)


async def _publish(bootstrap: str, secret: str, events: list[dict[str, Any]]) -> None:
    from gateway.domain.partner_signing import signed_event
    from gateway.events.kafka import new_producer

    settings = _kafka_settings(bootstrap)
    producer = new_producer(settings)
    await producer.start()
    try:
        for event in events:
            await producer.send(settings.kafka_partner_topic, signed_event(secret, **event), key=b"k1")
        await producer.flush()
    finally:
        await producer.stop()


async def _event_ids(bootstrap: str, topic: str) -> set[str]:
    """Every eventId on ``topic`` now (read from the beginning until a poll comes back empty)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    ids: set[str] = set()
    try:
        empty = 0
        while empty < 3:
            batch = await consumer.getmany(timeout_ms=500)
            empty = 0 if batch else empty + 1
            ids.update(json.loads(r.value)["eventId"] for records in batch.values() for r in records)
    finally:
        await consumer.stop()
    return ids


def test_kafka_broker_killed_and_restarted_relay_and_consumer_resume_without_loss(
    tmp_path: Path, gateways: list[GatewayProcess]
) -> None:
    import asyncio

    from tests.support.services import TansuBroker

    admin = token(Role.ADMIN)
    broker = TansuBroker(tmp_path / "tansu.log")
    bootstrap = broker.start()
    try:
        env = {
            "LOYALTY_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "LOYALTY_KAFKA_IDEMPOTENT_PRODUCER": "false",
            "LOYALTY_RELAY_LEASE_SECONDS": "3",
        }
        gateway = serve(gateways, tmp_path / "gw", **env).wait_ready()
        gateway.ok(REGISTER, {"id": "k1"}, token=admin)
        created = gateway.ok(CREATE_PARTNER.replace("{ apiKey }", "{ signingSecret }"), token=admin)
        secret = created["createPartner"]["signingSecret"]
        gateway.ok(LINK, {"m": "k1", "r": "k1"}, token=admin)

        def workers() -> dict[str, Any]:
            return dict(gateway.get("/readyz").json()["workers"])

        wait_until(lambda: workers()["balance-relay"].get("holdingLease"), timeout=60, what="the relay lease")

        assert broker.process is not None
        broker.process.send_signal(signal.SIGKILL)
        broker.process.wait()
        for i in range(5):  # GraphQL never waits for Kafka: these commit while the broker is down
            gateway.ok(GRANT, {"id": "k1", "key": f"outage-{i}"}, token=admin)
        assert gateway.get("/readyz").status == 200

        broker.start()  # back at the same address. Its storage is memory, so the topics are
        asyncio.run(_ensure_topics(bootstrap))  # re-created, as a real cluster would have kept them
        asyncio.run(
            _publish(
                bootstrap,
                secret,
                [
                    {
                        "partnerId": "air",
                        "eventId": f"after-{i}",
                        "type": "ACCRUE",
                        "memberRef": "k1",
                        "points": 3,
                        "occurredAt": "2026-03-02T04:00:00+00:00",
                    }
                    for i in range(5)
                ],
            )
        )
        wait_until(
            lambda: workers()["partner-events"].get("applied", 0) >= 5, timeout=180, what="the consumer to resume"
        )
        ledger = gateway.ok(
            'query { member(id: "k1") { ledger(first: 100) { edges { node { id } } } } }', token=admin
        )["member"]["ledger"]["edges"]
        expected = {edge["node"]["id"] for edge in ledger}
        assert len(expected) == 5 + 5  # 5 grants during the outage, 5 partner accruals after it
        wait_until(
            lambda: expected <= asyncio.run(_event_ids(bootstrap, "loyalty.balance-events")),
            timeout=180,
            what="the relay to publish every entry committed during and after the outage",
        )
        relay = workers()["balance-relay"]
        assert relay["state"] == "running"
    finally:
        broker.stop()
