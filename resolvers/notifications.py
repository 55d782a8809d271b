"""Admin GraphQL over member notifications: reminder settings, webhooks, the outbox and its dead letters."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from gateway.core.errors import BadInput
from gateway.core.permissions import Permission, require_permission
from gateway.domain.admin_audit import AuditAction
from gateway.domain.notifications import Reason, Status
from gateway.store.mongo import Document
from resolvers.context import Info
from resolvers.enums import graphql_enum, to_domain
from resolvers.pagination import Connection, connection, decode_cursor, page_size

NotificationReason = graphql_enum(Reason, "NotificationReason", "Why a member is notified.")
NotificationStatus = graphql_enum(Status, "NotificationStatus", "Where a notification stands in the outbox.")


@strawberry.type(description="Reminders before points expire (several allowed), in days before the expiry day.")
class NotificationSettings:
    expiring_reminder_days: list[int]


@strawberry.type(
    description="An operator's HTTPS endpoint; deliveries are signed with its secret (docs/notifications.md)."
)
class NotificationWebhook:
    id: str
    url: str
    description: str
    reasons: list[NotificationReason] | None  # type: ignore[valid-type]
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, doc: Document) -> NotificationWebhook:
        reasons = [NotificationReason(r) for r in doc["reasons"]] if doc.get("reasons") else None
        return cls(
            id=doc["_id"],
            url=doc["url"],
            description=doc.get("description", ""),
            reasons=reasons,
            active=doc["active"],
            created_at=doc["createdAt"],
        )


@strawberry.type(description="A new webhook and its signing secret: shown once, store it now.")
class NotificationWebhookCreated:
    webhook: NotificationWebhook
    secret: str


@strawberry.type
class DeliveryError:
    target: str
    error: str


@strawberry.type(description="One notification in the outbox: PENDING, DELIVERED, DEAD (dead letter) or SUPERSEDED.")
class Notification:
    id: str
    reason: NotificationReason  # type: ignore[valid-type]
    member_id: str
    status: NotificationStatus  # type: ignore[valid-type]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_errors: list[DeliveryError]
    data: JSON

    @classmethod
    def of(cls, doc: Document) -> Notification:
        return cls(
            id=doc["_id"],
            reason=NotificationReason(doc["reason"]),
            member_id=doc["memberId"],
            status=NotificationStatus(doc["status"]),
            attempts=doc["attempts"],
            created_at=doc["createdAt"],
            next_attempt_at=doc["nextAttemptAt"] if doc["status"] == "PENDING" else None,
            delivered_at=doc.get("deliveredAt"),
            last_errors=[DeliveryError(target=t, error=e) for t, e in (doc.get("lastErrors") or {}).items()],
            data=doc["data"],
        )

    @property
    def position(self) -> str:
        return f"{self.created_at.isoformat()}|{self.id}"


def _position(cursor: str | None) -> tuple[datetime, str] | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    at, sep, last_id = value.partition("|")
    try:
        return datetime.fromisoformat(at), last_id
    except ValueError:
        raise BadInput("after is not a valid cursor", field="after") from None


@strawberry.type
class NotificationQuery:
    @strawberry.field(description="Admin: when members are reminded before their points expire.")
    async def notification_settings(self, info: Info) -> NotificationSettings:
        require_permission(info.context.principal, Permission.NOTIFICATIONS_MANAGE)
        days = await info.context.services.notifications.reminder_days()
        return NotificationSettings(expiring_reminder_days=list(days))

    @strawberry.field(description="Admin: the webhooks notifications are delivered to (secrets are never shown again).")
    async def notification_webhooks(self, info: Info) -> list[NotificationWebhook]:
        require_permission(info.context.principal, Permission.NOTIFICATIONS_MANAGE)
        return [NotificationWebhook.of(doc) for doc in await info.context.services.notifications.webhooks()]

    @strawberry.field(description="Admin: the notification outbox, newest first; status DEAD lists the dead letters.")
    async def notifications(
        self,
        info: Info,
        status: NotificationStatus | None = None,  # type: ignore[valid-type]
        member_id: str | None = None,
        first: int = 20,
        after: str | None = None,
    ) -> Connection[Notification]:
        require_permission(info.context.principal, Permission.NOTIFICATIONS_MANAGE)
        size = page_size(first)
        docs = await info.context.services.notifications.page(
            status=to_domain(Status, status).value if status else None,
            member_id=member_id,
            before=_position(after),
            size=size + 1,
        )
        return connection([Notification.of(d) for d in docs], size, lambda n: n.position)


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(description="Admin: reminders N days before points expire (1–365, at most 5).")
    async def update_notification_settings(self, info: Info, expiring_reminder_days: list[int]) -> NotificationSettings:
        who = require_permission(info.context.principal, Permission.NOTIFICATIONS_MANAGE)
        audit = info.context.services.admin_audit.recorder(who, AuditAction.NOTIFICATION_SETTINGS, "notifications")
        days = await info.context.services.notifications.set_reminder_days(expiring_reminder_days, audit=audit)
        return NotificationSettings(expiring_reminder_days=list(days))

    @strawberry.mutation(description="Admin: deliver notifications (all reasons, or the ones listed) to an HTTPS URL.")
    async def add_notification_webhook(
        self,
        info: Info,
        url: str,
        description: str = "",
        reasons: list[NotificationReason] | None = None,  # type: ignore[valid-type]
    ) -> NotificationWebhookCreated:
        who = require_permission(info.context.principal, Permission.NOTIFICATIONS_MANAGE)
        chosen = [to_domain(Reason, r) for r in reasons] if reasons else None
        audit = info.context.services.admin_audit.recorder(who, AuditAction.WEBHOOK_ADD, "webhook")
        doc, secret = await info.context.services.notifications.add_webhook(url, description, chosen, audit=audit)
        return NotificationWebhookCreated(webhook=NotificationWebhook.of(doc), secret=secret)

    @strawberry.mutation(description="Admin: stop delivering to a webhook (deliveries not yet made to it are skipped).")
    async def remove_notification_webhook(self, info: Info, id: strawberry.ID) -> NotificationWebhook:
        who = require_permission(info.context.principal, Permission.NOTIFICATIONS_MANAGE)
        audit = info.context.services.admin_audit.recorder(who, AuditAction.WEBHOOK_REMOVE, "webhook")
        return NotificationWebhook.of(await info.context.services.notifications.remove_webhook(str(id), audit=audit))

    @strawberry.mutation(description="Admin: give a dead-lettered notification a fresh round of attempts.")
    async def retry_notification(self, info: Info, id: strawberry.ID) -> Notification:
        who = require_permission(info.context.principal, Permission.NOTIFICATIONS_MANAGE)
        audit = info.context.services.admin_audit.recorder(who, AuditAction.NOTIFICATION_RETRY, "notification")
        return Notification.of(await info.context.services.notifications.retry(str(id), audit=audit))
