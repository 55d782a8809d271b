"""Partner events from Kafka: verify, apply exactly once, dead-letter what cannot apply.

Each message on ``settings.kafka_partner_topic`` is one JSON partner event (schema
and signing in docs/partners.md). The consumer reads a batch, applies its events
through ``PartnerOperations.apply`` (the same code and idempotency key space as GraphQL),
sends the ones that cannot apply to ``settings.kafka_dead_letter_topic`` with the
reason, and only then commits the batch's offsets. A crash or cancellation
anywhere before the commit means the batch is read again: events already applied
replay as no-ops through their idempotency records, so nothing is lost and nothing
applies twice. Events with the same Kafka message key (partners key by member) are
applied in order, as Kafka delivers them; different keys are applied concurrently.
Unkeyed events keep their order per (partnerId, memberRef).

Consecutive events of one key and partner (up to ``batch_size``) apply in ONE MongoDB
transaction (``PartnerOperations.apply_batch``), each with its own idempotency record. If any of
them cannot apply, that transaction is dropped and the events apply one by one, so each
refusal is dead-lettered on its own and the others still apply.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import CommitFailedError, KafkaError
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from gateway.core.errors import DomainError
from gateway.core.metrics import DEAD_LETTERS as DEAD_LETTERED
from gateway.core.metrics import PARTNER_APPLIED, PARTNER_LAG
from gateway.core.tasks import finish_before_cancelling
from gateway.domain.exchange import Direction
from gateway.domain.partner_commands import OperationType, PartnerCommand
from gateway.domain.partner_signing import signature_matches
from gateway.domain.partner_terms import is_active
from gateway.events.kafka import ensure_topics, new_producer
from gateway.features.partner_operations import PartnerOperations
from gateway.services import Services
from gateway.store import partners as store
from gateway.store.mongo import Document

log = logging.getLogger(__name__)

GROUP_ID = "loyalty-gateway-partner-events"


class PartnerEvent(BaseModel):
    """The JSON schema of a partner event (strict: integers must be JSON integers)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    partnerId: str
    eventId: str
    type: OperationType
    memberRef: str
    points: int | None = None
    amount: int | None = None
    direction: Direction | None = None
    originalEventId: str | None = None
    occurredAt: str
    signature: str

    @field_validator("occurredAt")
    @classmethod
    def _iso_instant(cls, value: str) -> str:
        at = datetime.fromisoformat(value)
        if at.tzinfo is None:
            raise ValueError("occurredAt must be an ISO 8601 instant with an offset, e.g. 2026-03-02T04:00:00Z")
        return value

    # The wire names are camelCase; a command reads these (``PartnerCommand.from_request``).
    @property
    def event_id(self) -> str:
        return self.eventId

    @property
    def member_ref(self) -> str:
        return self.memberRef

    @property
    def original_event_id(self) -> str | None:
        return self.originalEventId

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromisoformat(self.occurredAt)

    def command(self) -> PartnerCommand:
        return PartnerCommand.from_request(self.type, self)


class Rejected(Exception):
    """An event that cannot apply: it goes to the dead-letter topic with ``code`` and ``reason``."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def parse(value: bytes | None) -> PartnerEvent:
    if value is None:
        raise Rejected("BAD_JSON", "empty message")
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise Rejected("BAD_JSON", f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise Rejected("INVALID_EVENT", "an event must be a JSON object")
    try:
        return PartnerEvent.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "event"
        raise Rejected("INVALID_EVENT", f"{where}: {first['msg']}") from None


@dataclass
class ConsumeStats:
    read: int = 0
    applied: int = 0
    replayed: int = 0
    dead_lettered: int = 0
    batches: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class PartnerEventConsumer:
    def __init__(
        self,
        services: Services,
        *,
        group_id: str = GROUP_ID,
        concurrency: int = 32,
        max_records: int = 500,
        batch_size: int = 50,
        consumer_options: dict[str, Any] | None = None,
    ) -> None:
        settings = services.settings
        if not settings.kafka_bootstrap_servers:
            raise DomainError("LOYALTY_KAFKA_BOOTSTRAP_SERVERS is not set", code="KAFKA_NOT_CONFIGURED")
        self.services = services
        self.settings = settings
        self.operations: PartnerOperations = services.partner_operations
        self.group_id = group_id
        self.concurrency = concurrency
        self.max_records = max_records
        self.batch_size = batch_size  # events of one member applied in one transaction, at most
        self.consumer_options = consumer_options or {}
        self.stats = ConsumeStats()
        self.status: dict[str, Any] = {}

    async def run(self, *, idle_exit: float | None = None) -> ConsumeStats:
        """Consume until cancelled, or until no message arrived for ``idle_exit`` seconds."""
        await ensure_topics(self.settings, self.settings.kafka_partner_topic, self.settings.kafka_dead_letter_topic)
        consumer = AIOKafkaConsumer(
            self.settings.kafka_partner_topic,
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self.consumer_options,
        )
        producer = new_producer(self.settings)
        await producer.start()
        try:
            await consumer.start()
            try:
                await self._loop(consumer, producer, idle_exit)
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
        return self.stats

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, idle_exit: float | None) -> None:
        idle_since = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=500, max_records=self.max_records)
            if not batch:
                await record_lag(consumer)
                if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                    return
                continue
            idle_since = time.monotonic()
            self.stats.batches += 1
            self.status["lastBatchAt"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            # All partitions of the batch at once: a message key lives on one partition, so
            # grouping by key across them keeps every ordering Kafka promises.
            await self.process([r for records in batch.values() for r in records], producer)
            self.status.update(
                read=self.stats.read,
                applied=self.stats.applied,
                replayed=self.stats.replayed,
                deadLettered=self.stats.dead_lettered,
            )
            try:
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
            except CommitFailedError as exc:
                # A rebalance moved a partition; its new owner re-reads and replays harmlessly.
                log.warning("offset commit failed: %r", exc)
            await record_lag(consumer)

    async def process(self, records: list[ConsumerRecord], producer: AIOKafkaProducer) -> None:
        """Apply a batch; returns once every event is applied or its dead letter is acked."""
        self.stats.read += len(records)
        partners: dict[str, Document | None] = {}
        groups: dict[tuple[Any, ...], list[tuple[ConsumerRecord, PartnerEvent | Rejected]]] = {}
        for record in records:
            try:
                event = parse(record.value)
                await self._verify(event, partners)
                key: tuple[Any, ...] = (
                    ("key", record.topic, record.partition, record.key)
                    if record.key
                    else ("ref", event.partnerId, event.memberRef)
                )
                item: PartnerEvent | Rejected = event
            except Rejected as rejected:
                key, item = ("rejected", record.topic, record.partition, record.offset), rejected
            groups.setdefault(key, []).append((record, item))
        dead: list[tuple[asyncio.Future[Any], Document]] = []
        limit = asyncio.Semaphore(self.concurrency)

        async def reject(record: ConsumerRecord, rejected: Rejected) -> None:
            sent = await self._dead_letter(record, rejected, producer)
            if sent is not None:
                dead.append(sent)

        async def run_group(items: list[tuple[ConsumerRecord, PartnerEvent | Rejected]]) -> None:
            """One key's events in order: consecutive events of one partner apply as one
            transaction (``PartnerOperations.apply_batch``); each is still dead-lettered on its own."""
            async with limit:
                run: list[tuple[ConsumerRecord, PartnerEvent]] = []
                for record, item in [*items, (None, None)]:
                    flush = not isinstance(item, PartnerEvent) or (
                        run and (run[0][1].partnerId != item.partnerId or len(run) >= self.batch_size)
                    )
                    if flush and run:
                        for (done, _), outcome in zip(run, await self._apply_run(run, partners), strict=True):
                            if outcome is not None:
                                await reject(done, outcome)
                        run = []
                    if isinstance(item, PartnerEvent):
                        run.append((record, item))
                    elif isinstance(item, Rejected):
                        await reject(record, item)

        try:
            async with asyncio.TaskGroup() as tasks:
                for items in groups.values():
                    tasks.create_task(run_group(items))
        finally:
            # Letters already sent are waited for and recorded even when the batch is cancelled
            # or fails: one sent and not recorded would be sent again by the re-read.
            if dead:
                await finish_before_cancelling(self._settle_dead_letters(dead))

    async def _settle_dead_letters(self, dead: list[tuple[asyncio.Future[Any], Document]]) -> None:
        await asyncio.gather(*(future for future, _ in dead))
        await self._remember_dead_letters([letter for _, letter in dead])

    async def _verify(self, event: PartnerEvent, partners: dict[str, Document | None]) -> None:
        if event.partnerId not in partners:
            partners[event.partnerId] = await store.find_partner(self.services.db, event.partnerId)
        partner = partners[event.partnerId]
        if partner is None:
            raise Rejected("PARTNER_NOT_FOUND", f"unknown partner {event.partnerId!r}")
        if not is_active(partner):
            raise Rejected("PARTNER_INACTIVE", f"partner {event.partnerId!r} is not active")
        if not signature_matches(event.model_dump(mode="json"), event.signature, partner["signingSecret"]):
            raise Rejected("BAD_SIGNATURE", "signature does not match the partner's signing secret")

    async def _apply_run(
        self, run: list[tuple[ConsumerRecord, PartnerEvent]], partners: dict[str, Document | None]
    ) -> list[Rejected | None]:
        """Apply consecutive events of one partner; the outcome of each (None: applied or replayed).
        ``partners``: the documents the batch's signature checks read, reused by the transaction."""
        commands = [event.command() for _, event in run]
        outcomes: list[Rejected | None] = []
        partner_id = run[0][1].partnerId
        known = partners.get(partner_id)
        for outcome in await self.operations.apply_batch(partner_id, commands, partner=known):
            if isinstance(outcome, DomainError):
                outcomes.append(Rejected(outcome.code, outcome.message))
                continue
            _, replayed = outcome
            if replayed:
                self.stats.replayed += 1
            else:
                self.stats.applied += 1
            PARTNER_APPLIED.labels("replayed" if replayed else "applied").inc()
            outcomes.append(None)
        return outcomes

    async def _dead_letter(
        self, record: ConsumerRecord, rejected: Rejected, producer: AIOKafkaProducer
    ) -> tuple[asyncio.Future[Any], Document] | None:
        """Send one dead letter (not awaited here); skipped when a previous run already sent it."""
        letter_id = f"{record.topic}:{record.partition}:{record.offset}"
        if await store.dead_letter_sent(self.services.db, letter_id):
            return None
        self.stats.dead_lettered += 1
        self.stats.reasons[rejected.code] = self.stats.reasons.get(rejected.code, 0) + 1
        value = record.value or b""
        letter = {
            "id": letter_id,
            "reasonCode": rejected.code,
            "reason": rejected.reason,
            "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
            "original": value.decode("utf-8", errors="replace"),
            "originalBase64": base64.b64encode(value).decode(),
            "deadLetteredAt": self.services.clock.now().isoformat(),
        }
        record_doc = {**letter, "at": self.services.clock.now()}
        log.info("dead-lettering %s: %s %s", letter_id, rejected.code, rejected.reason)
        future = await producer.send(self.settings.kafka_dead_letter_topic, orjson.dumps(letter), key=record.key)
        DEAD_LETTERED.labels(rejected.code).inc()
        PARTNER_APPLIED.labels("dead_lettered").inc()
        return future, record_doc

    async def _remember_dead_letters(self, letters: list[Document]) -> None:
        """Record acked dead letters so a re-read after a crash does not send them again."""
        docs = [
            {"_id": letter["id"], "reasonCode": letter["reasonCode"], "reason": letter["reason"], "at": letter["at"]}
            for letter in letters
        ]
        await store.remember_dead_letters(self.services.db, docs)  # a concurrent re-read's duplicates are skipped


async def record_lag(consumer: AIOKafkaConsumer) -> None:
    """Messages on this consumer's partitions past its position (the partner-consumer lag gauge)."""
    lag = 0
    try:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag += max(0, highwater - await consumer.position(tp))
    except KafkaError as exc:  # a rebalance in progress: keep the last value
        log.debug("partner consumer lag not measured: %r", exc)
        return
    PARTNER_LAG.set(lag)


async def partner_events_worker(services: Services) -> None:
    """The in-gateway consumer (runs when LOYALTY_KAFKA_BOOTSTRAP_SERVERS is set).

    ``services.extras["partner_consumer"]`` may hold PartnerEventConsumer options (embedding, tests).
    """
    from gateway.workers.supervisor import worker_state

    consumer = PartnerEventConsumer(services, **services.extras.get("partner_consumer", {}))
    consumer.status = worker_state(services, "partner-events").detail
    await consumer.run()
