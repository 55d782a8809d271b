"""Notifications repository: the outbox of member notifications, webhooks, settings and scan cursors.

The ``notifications`` collection is an outbox: a notification is inserted once (its ``_id`` is its
identity, see ``gateway.domain.notifications``) and then claimed, delivered, retried or
dead-lettered by any replica's dispatcher. A claim is a short lease on one document, so two
replicas never deliver the same notification at once.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from gateway.domain.notifications import ExpiringGroup, Status
from gateway.store.mongo import Database, Document

NOTIFICATIONS = "notifications"
WEBHOOKS = "notification_webhooks"
SETTINGS = "notification_settings"
CURSORS = "notification_cursors"
SETTINGS_ID = "current"

PENDING = Status.PENDING.value
DELIVERED = Status.DELIVERED.value
DEAD = Status.DEAD.value
SUPERSEDED = Status.SUPERSEDED.value


async def insert_once(db: Database, notification: Document) -> bool:
    """Record a notification unless its id is taken; True when this call recorded it."""
    try:
        await db[NOTIFICATIONS].insert_one(notification)
    except DuplicateKeyError:
        return False
    return True


async def claim_due(db: Database, now: datetime, owner: str, claim_for: timedelta) -> Document | None:
    """Take one pending notification whose next attempt is due, for ``claim_for``."""
    return await db[NOTIFICATIONS].find_one_and_update(
        {"status": PENDING, "nextAttemptAt": {"$lte": now}, "claimedUntil": {"$lte": now}},
        {"$set": {"claimedBy": owner, "claimedUntil": now + claim_for}},
        sort=[("nextAttemptAt", 1)],
        return_document=ReturnDocument.AFTER,
    )


async def record_attempt(db: Database, notification_id: str, owner: str, update: Document) -> None:
    """Store an attempt's outcome; only the claim's owner may (a late owner whose claim lapsed may not)."""
    await db[NOTIFICATIONS].update_one({"_id": notification_id, "claimedBy": owner}, update)


async def get(db: Database, notification_id: str) -> Document | None:
    return await db[NOTIFICATIONS].find_one({"_id": notification_id})


async def page(
    db: Database, *, status: str | None, member_id: str | None, before: tuple[datetime, str] | None, size: int
) -> list[Document]:
    """Newest first; ``before`` is the (createdAt, _id) of the last item of the previous page."""
    query: Document = {}
    if status is not None:
        query["status"] = status
    if member_id is not None:
        query["memberId"] = member_id
    if before is not None:
        at, last_id = before
        query["$or"] = [{"createdAt": {"$lt": at}}, {"createdAt": at, "_id": {"$lt": last_id}}]
    return await db[NOTIFICATIONS].find(query).sort([("createdAt", -1), ("_id", -1)]).limit(size).to_list()


async def requeue(db: Database, notification_id: str, now: datetime, session: Any = None) -> Document | None:
    """A dead notification gets a fresh round of attempts (an operator fixed the receiver)."""
    dead_targets_pending = {
        "$arrayToObject": {
            "$map": {
                "input": {"$objectToArray": "$targets"},
                "as": "t",
                "in": {
                    "k": "$$t.k",
                    "v": {"$cond": [{"$eq": ["$$t.v.status", DEAD]}, {"status": PENDING}, "$$t.v"]},
                },
            }
        }
    }
    return await db[NOTIFICATIONS].find_one_and_update(
        {"_id": notification_id, "status": DEAD},
        [
            {
                "$set": {
                    "status": PENDING,
                    "attempts": 0,
                    "nextAttemptAt": now,
                    "claimedUntil": now,
                    "targets": dead_targets_pending,
                }
            }
        ],
        return_document=ReturnDocument.AFTER,
        session=session,
    )


# -- what is due ---------------------------------------------------------------------------------


async def expiring_groups(db: Database, now: datetime, horizon: datetime, timezone: str) -> list[ExpiringGroup]:
    """Per member and local expiry day, the points of available and pending lots expiring in (now, horizon]."""
    pipeline: list[Document] = [
        {"$match": {"remaining": {"$gt": 0}, "expiresAt": {"$gt": now, "$lte": horizon}}},
        {
            "$group": {
                "_id": {
                    "member": "$memberId",
                    "day": {"$dateToString": {"date": "$expiresAt", "format": "%Y-%m-%d", "timezone": timezone}},
                },
                "points": {"$sum": "$remaining"},
                "expiresAt": {"$min": "$expiresAt"},
            }
        },
    ]
    return [
        ExpiringGroup(
            member_id=row["_id"]["member"],
            expires_on=date.fromisoformat(row["_id"]["day"]),
            expires_at=row["expiresAt"],
            points=row["points"],
        )
        async for row in await db["lots"].aggregate(pipeline)
    ]


async def cursor(db: Database, name: str) -> datetime | None:
    doc = await db[CURSORS].find_one({"_id": name})
    return doc["at"] if doc else None


async def move_cursor(db: Database, name: str, at: datetime) -> None:
    await db[CURSORS].update_one({"_id": name}, {"$max": {"at": at}}, upsert=True)


async def tier_changes_since(db: Database, since: datetime, until: datetime) -> list[Document]:
    return await db["tier_changes"].find({"at": {"$gt": since, "$lte": until}}).sort("at", 1).to_list()


async def shipped_since(db: Database, since: datetime, until: datetime) -> list[Document]:
    """Orders shipped in the interval; a coupon (virtual) order is fulfilled, never shipped."""
    return (
        await db["redemptions"]
        .find({"status": "FULFILLED", "fulfilledAt": {"$gt": since, "$lte": until}, "kind": {"$ne": "VIRTUAL"}})
        .sort("fulfilledAt", 1)
        .to_list()
    )


async def members_by_id(db: Database, member_ids: list[str]) -> dict[str, Document]:
    """The contact fields a notification carries (what an SMS or WeChat sender needs)."""
    projection = {"displayName": 1, "email": 1, "phone": 1, "tier": 1}
    return {doc["_id"]: doc async for doc in db.members.find({"_id": {"$in": member_ids}}, projection)}


# -- configuration -------------------------------------------------------------------------------


async def settings(db: Database) -> Document | None:
    return await db[SETTINGS].find_one({"_id": SETTINGS_ID})


async def save_settings(db: Database, values: Document, session: Any = None) -> Document:
    doc = await db[SETTINGS].find_one_and_update(
        {"_id": SETTINGS_ID}, {"$set": values}, upsert=True, return_document=ReturnDocument.AFTER, session=session
    )
    assert doc is not None
    return doc


async def webhooks(db: Database, *, active_only: bool = False) -> list[Document]:
    query: Document = {"active": True} if active_only else {}
    return await db[WEBHOOKS].find(query).sort("createdAt", 1).to_list()


async def add_webhook(db: Database, webhook: Document, session: Any = None) -> None:
    await db[WEBHOOKS].insert_one(webhook, session=session)


async def deactivate_webhook(db: Database, webhook_id: str, now: datetime, session: Any = None) -> Document | None:
    return await db[WEBHOOKS].find_one_and_update(
        {"_id": webhook_id, "active": True},
        {"$set": {"active": False, "removedAt": now}},
        return_document=ReturnDocument.AFTER,
        session=session,
    )
