"""Member notifications (issue 14 §4): points about to expire, the annual clearing ahead, tier changes
and shipped redemptions, produced as events to Kafka (``loyalty.notifications``) and to the
operator's signed HTTPS webhooks, retried with backoff and dead-lettered after the last attempt.

Two steps, both safe on every replica at once:
- ``scan`` records what is due in the outbox; a notification's id is its identity (member, reason,
  period), so it is recorded once however often and wherever the scan runs;
- ``dispatch`` claims due notifications one at a time and delivers each to its targets.
No SMS or WeChat provider is integrated: each event carries the member's contact fields, the
points and dates, which is everything a sender needs.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from gateway.core.clock import Clock
from gateway.core.errors import BadInput, NotFound
from gateway.domain.notifications import (
    Reason,
    Reminder,
    due_reminders,
    retry_delay,
    shipped_id,
    signature,
    tier_change_id,
)
from gateway.domain.program import ExpiryMode
from gateway.features.admin_audit import Recorder, audited
from gateway.store import notifications as store
from gateway.store.mongo import Database, Document
from gateway.store.program import load_program

DEFAULT_REMINDER_DAYS = (30, 7, 1)
MAX_REMINDERS = 5
MAX_WEBHOOKS = 20
KAFKA = "kafka"
SKIPPED = "SKIPPED"
CLAIM = timedelta(seconds=60)
SCAN_OVERLAP = timedelta(minutes=5)  # rescan a little of the past: a transaction may commit late
FIRST_SCAN_LOOKBACK = timedelta(hours=1)
WEBHOOK_TIMEOUT = 5.0
LOOPBACK_HOSTS = {"localhost"}

Publish = Callable[[str, bytes, bytes], Awaitable[None]]  # (topic, key, value)


def new_webhook_secret() -> str:
    return "lgw_" + secrets.token_urlsafe(32)


def checked_webhook_url(url: str) -> str:
    """HTTPS only; plain HTTP just for a receiver on this host (a local relay, or a test)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname or len(url) > 2000:
        raise BadInput("url must be an absolute https:// URL", field="url")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise BadInput("url must use https:// (plain http only for a receiver on this host)", field="url")
    if parts.username or parts.password:
        raise BadInput("url must not carry credentials; the signature authenticates us", field="url")
    return url.strip()


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked_reminder_days(days: list[int]) -> tuple[int, ...]:
    unique = sorted(set(days), reverse=True)
    if len(unique) != len(days):
        raise BadInput("reminder days must not repeat", field="expiringReminderDays")
    if len(unique) > MAX_REMINDERS:
        raise BadInput(f"at most {MAX_REMINDERS} reminders", field="expiringReminderDays")
    if any(not 1 <= d <= 365 for d in unique):
        raise BadInput("each reminder is 1 to 365 days before expiry", field="expiringReminderDays")
    return tuple(unique)


@dataclass
class ScanReport:
    recorded: dict[str, int] = field(default_factory=dict)
    superseded: int = 0

    def count(self, reason: Reason) -> None:
        self.recorded[reason.value] = self.recorded.get(reason.value, 0) + 1


@dataclass
class DispatchReport:
    delivered: int = 0
    retried: int = 0
    dead: int = 0


class Notifications:
    def __init__(self, db: Database, clock: Clock, *, max_attempts: int, kafka_topic: str | None) -> None:
        self.db = db
        self.clock = clock
        self.max_attempts = max_attempts
        self.kafka_topic = kafka_topic

    # -- configuration (admin) ------------------------------------------------------------------

    async def reminder_days(self) -> tuple[int, ...]:
        doc = await store.settings(self.db)
        return tuple(doc["expiringReminderDays"]) if doc else DEFAULT_REMINDER_DAYS

    async def set_reminder_days(self, days: list[int], *, audit: Recorder | None = None) -> tuple[int, ...]:
        checked = checked_reminder_days(days)

        async def work(session: Any) -> None:
            values = {"expiringReminderDays": list(checked), "updatedAt": self.clock.now()}
            await store.save_settings(self.db, values, session=session)
            if audit is not None:
                await audit(session, "settings", {"expiringReminderDays": list(checked)})

        await audited(self.db, audit, work)
        return checked

    async def webhooks(self) -> list[Document]:
        return await store.webhooks(self.db)

    async def add_webhook(
        self, url: str, description: str, reasons: list[Reason] | None, *, audit: Recorder | None = None
    ) -> tuple[Document, str]:
        """The webhook and its signing secret, shown once."""
        if len(description) > 200:
            raise BadInput("description is at most 200 characters", field="description")
        if len(await store.webhooks(self.db, active_only=True)) >= MAX_WEBHOOKS:
            raise BadInput(f"at most {MAX_WEBHOOKS} active webhooks", field="url")
        secret = new_webhook_secret()
        doc: Document = {
            "_id": "whk_" + secrets.token_hex(12),
            "url": checked_webhook_url(url),
            "description": description,
            "reasons": sorted({r.value for r in reasons}) if reasons else None,
            "secret": secret,
            "active": True,
            "createdAt": self.clock.now(),
        }

        async def work(session: Any) -> None:
            await store.add_webhook(self.db, doc, session=session)
            if audit is not None:  # never the secret
                await audit(session, doc["_id"], {"url": doc["url"], "reasons": doc["reasons"]})

        await audited(self.db, audit, work)
        return doc, secret

    async def remove_webhook(self, webhook_id: str, *, audit: Recorder | None = None) -> Document:
        async def work(session: Any) -> Document:
            doc = await store.deactivate_webhook(self.db, webhook_id, self.clock.now(), session=session)
            if doc is None:
                raise NotFound("No active webhook with that id", code="NOT_FOUND")
            if audit is not None:
                await audit(session, webhook_id, {"url": doc["url"]})
            return doc

        return await audited(self.db, audit, work)

    async def page(
        self, *, status: str | None, member_id: str | None, before: tuple[datetime, str] | None, size: int
    ) -> list[Document]:
        return await store.page(self.db, status=status, member_id=member_id, before=before, size=size)

    async def retry(self, notification_id: str, *, audit: Recorder | None = None) -> Document:
        async def work(session: Any) -> Document:
            doc = await store.requeue(self.db, notification_id, self.clock.now(), session=session)
            if doc is None:
                raise NotFound("No dead-lettered notification with that id", code="NOT_FOUND")
            if audit is not None:
                await audit(session, notification_id, {"memberId": doc.get("memberId"), "reason": doc.get("reason")})
            return doc

        return await audited(self.db, audit, work)

    # -- scan: what is due ------------------------------------------------------------------------

    async def scan(self) -> ScanReport:
        now = self.clock.now()
        report = ScanReport()
        program = await load_program(self.db)
        days = await self.reminder_days()
        targets = await self._targets()
        horizon = now + timedelta(days=max(days))
        groups = await store.expiring_groups(self.db, now, horizon, program.timezone)
        annual = program.expiry.mode is ExpiryMode.ANNUAL_CLEARING
        reminders = due_reminders(groups, now, days, annual_clearing=annual)
        members = await store.members_by_id(self.db, sorted({r.member_id for r in reminders}))
        for reminder in reminders:
            if reminder.member_id not in members:
                continue
            if await self._record(
                reminder.id, reminder.reason, members[reminder.member_id], _reminder_data(reminder), targets, now
            ):
                report.count(reminder.reason)
            for moot in reminder.superseded_ids(days):
                if await store.insert_once(self.db, _superseded(moot, reminder, now)):
                    report.superseded += 1
        await self._scan_tier_changes(now, targets, report)
        await self._scan_shipped(now, targets, report)
        return report

    async def _scan_tier_changes(self, now: datetime, targets: list[Document], report: ScanReport) -> None:
        since = await self._since("tier_changes", now)
        changes = await store.tier_changes_since(self.db, since, now)
        members = await store.members_by_id(self.db, sorted({c["memberId"] for c in changes}))
        for change in changes:
            reason = Reason.TIER_UP if change["direction"] == "UP" else Reason.TIER_DOWN
            data = {"fromTier": change["fromTier"], "toTier": change["toTier"], "changedAt": _iso(change["at"])}
            member = members.get(change["memberId"])
            if member and await self._record(tier_change_id(str(change["_id"])), reason, member, data, targets, now):
                report.count(reason)
        await store.move_cursor(self.db, "tier_changes", now)

    async def _scan_shipped(self, now: datetime, targets: list[Document], report: ScanReport) -> None:
        since = await self._since("shipped", now)
        orders = await store.shipped_since(self.db, since, now)
        members = await store.members_by_id(self.db, sorted({o["memberId"] for o in orders}))
        for order in orders:
            data = {
                "orderId": order["_id"],
                "giftId": order.get("giftId"),
                "giftName": order.get("giftName"),
                "quantity": order.get("quantity"),
                "carrier": (order.get("shipment") or {}).get("carrier"),
                "trackingNumber": (order.get("shipment") or {}).get("trackingNumber"),
                "shippedAt": _iso(order["fulfilledAt"]),
            }
            member = members.get(order["memberId"])
            reason = Reason.REDEMPTION_SHIPPED
            if member and await self._record(shipped_id(order["_id"]), reason, member, data, targets, now):
                report.count(reason)
        await store.move_cursor(self.db, "shipped", now)

    async def _since(self, name: str, now: datetime) -> datetime:
        """Where the last scan of ``name`` stopped, less an overlap; the first scan looks back an hour."""
        at = await store.cursor(self.db, name)
        return (at - SCAN_OVERLAP) if at is not None else now - FIRST_SCAN_LOOKBACK

    async def _targets(self) -> list[Document]:
        return await store.webhooks(self.db, active_only=True)

    async def _record(
        self,
        notification_id: str,
        reason: Reason,
        member: Document,
        data: Document,
        webhooks: list[Document],
        now: datetime,
    ) -> bool:
        targets = {f"webhook:{w['_id']}": {"status": store.PENDING} for w in webhooks if _wants(w, reason)}
        if self.kafka_topic:
            targets[KAFKA] = {"status": store.PENDING}
        doc: Document = {
            "_id": notification_id,
            "reason": reason.value,
            "memberId": member["_id"],
            "member": {k: member.get(k) for k in ("displayName", "email", "phone", "tier")},
            "data": data,
            "createdAt": now,
            "targets": targets,
            "status": store.PENDING if targets else store.DELIVERED,
            "attempts": 0,
            "nextAttemptAt": now,
            "claimedUntil": now,
        }
        return await store.insert_once(self.db, doc)

    # -- dispatch: deliver, retry, dead-letter ----------------------------------------------------

    async def dispatch(
        self, http: httpx.AsyncClient, publish: Publish | None, *, owner: str, limit: int = 200
    ) -> DispatchReport:
        report = DispatchReport()
        hooks = {f"webhook:{w['_id']}": w for w in await store.webhooks(self.db)}
        for _ in range(limit):
            now = self.clock.now()
            doc = await store.claim_due(self.db, now, owner, CLAIM)
            if doc is None:
                break
            body = event_body(doc)
            errors: dict[str, str] = {}
            delivered: dict[str, Any] = {}
            for target, state in doc["targets"].items():
                if state["status"] != store.PENDING:
                    continue
                if target != KAFKA and not hooks.get(target, {}).get("active"):
                    delivered[f"targets.{target}"] = {"status": SKIPPED, "at": now}  # the webhook was removed
                    continue
                error = await self._deliver(target, hooks.get(target), doc, body, http, publish)
                if error is None:
                    delivered[f"targets.{target}"] = {"status": store.DELIVERED, "at": now}
                else:
                    errors[target] = error
            await store.record_attempt(self.db, doc["_id"], owner, self._outcome(doc, delivered, errors, now, report))
        return report

    def _outcome(
        self, doc: Document, delivered: dict[str, Any], errors: dict[str, str], now: datetime, report: DispatchReport
    ) -> Document:
        attempts = doc["attempts"] + 1
        update: dict[str, Any] = {**delivered, "attempts": attempts, "claimedUntil": now, "lastAttemptAt": now}
        if not errors:
            report.delivered += 1
            update |= {"status": store.DELIVERED, "deliveredAt": now}
        elif attempts >= self.max_attempts:
            report.dead += 1
            update |= {"status": store.DEAD, "deadAt": now, "lastErrors": errors}
            update |= {f"targets.{t}": {"status": store.DEAD, "error": e} for t, e in errors.items()}
        else:
            report.retried += 1
            update |= {"nextAttemptAt": now + retry_delay(attempts), "lastErrors": errors}
        return {"$set": update}

    async def _deliver(
        self,
        target: str,
        hook: Document | None,
        doc: Document,
        body: bytes,
        http: httpx.AsyncClient,
        publish: Publish | None,
    ) -> str | None:
        """None when delivered, else a short reason (never the receiver's body)."""
        if target == KAFKA:
            if publish is None or not self.kafka_topic:
                return "kafka unavailable"
            try:
                await publish(self.kafka_topic, doc["memberId"].encode(), body)
            except Exception as exc:  # any broker failure is retried
                return f"kafka: {type(exc).__name__}"
            return None
        assert hook is not None
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "loyalty-gateway-notifications",
            "X-Loyalty-Delivery": doc["_id"],
            "X-Loyalty-Event": doc["reason"],
            "X-Loyalty-Timestamp": str(timestamp),
            "X-Loyalty-Signature": signature(hook["secret"], timestamp, body),
        }
        try:
            response = await http.post(hook["url"], content=body, headers=headers, timeout=WEBHOOK_TIMEOUT)
        except httpx.HTTPError as exc:
            return f"http: {type(exc).__name__}"
        if not 200 <= response.status_code < 300:
            return f"http status {response.status_code}"
        return None


def event_body(doc: Document) -> bytes:
    """The event as sent to Kafka and webhooks (docs/notifications.md documents each field)."""
    return orjson.dumps(
        {
            "id": doc["_id"],
            "type": "member.notification",
            "reason": doc["reason"],
            "occurredAt": _iso(doc["createdAt"]),
            "member": {"id": doc["memberId"], **doc["member"]},
            "data": doc["data"],
        }
    )


def _reminder_data(reminder: Reminder) -> Document:
    return {
        "points": reminder.points,
        "expiresAt": _iso(reminder.expires_at),
        "expiresOn": reminder.expires_on.isoformat(),
        "daysBefore": reminder.days_before,
    }


def _superseded(notification_id: str, by: Reminder, now: datetime) -> Document:
    return {
        "_id": notification_id,
        "reason": by.reason.value,
        "memberId": by.member_id,
        "member": {},
        "data": {"supersededBy": by.id},
        "createdAt": now,
        "targets": {},
        "status": store.SUPERSEDED,
        "attempts": 0,
        "nextAttemptAt": now,
        "claimedUntil": now,
    }


def _wants(webhook: Document, reason: Reason) -> bool:
    return webhook.get("reasons") is None or reason.value in webhook["reasons"]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
