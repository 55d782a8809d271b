"""The admin audit log's rules: what an entry says, and the hash chain that makes edits visible.

Every staff action that changes something (a config change, a grant, a freeze, a merge, an
erasure, a key rotation...) appends one entry. Entries are never updated or deleted; each carries
the hash of the one before it, so an entry changed or removed behind the gateway's back breaks the
chain at that point (``verify_chain``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

GENESIS = "0" * 64


class AuditAction(StrEnum):
    CONFIG_CHANGE = "config.change"
    POINTS_GRANT = "points.grant"
    POINTS_ADJUST = "points.adjust"
    GRANT_REQUESTED = "grant.requested"
    GRANT_APPROVED = "grant.approved"
    GRANT_REJECTED = "grant.rejected"
    MEMBER_FREEZE = "member.freeze"
    MEMBER_UNFREEZE = "member.unfreeze"
    MEMBER_MERGE = "member.merge"
    MEMBER_UNMERGE = "member.unmerge"
    MEMBER_EXPORT = "member.export"
    MEMBER_ERASE = "member.erase"
    MEMBER_SEGMENTS_REFRESH = "member_segments.refresh"
    PARTNER_CHANGE = "partner.change"
    PARTNER_KEY_ROTATE = "partner.key_rotate"
    PARTNER_LINK = "partner.link"
    GIFT_CHANGE = "gift.change"
    COUPON_POOL_CHANGE = "coupon_pool.change"
    ORDER_CHANGE = "order.change"
    CAMPAIGN_CHANGE = "campaign.change"
    SEGMENT_GRANT = "segment_grant.run"
    NOTIFICATION_SETTINGS = "notifications.change"
    IMPORT = "data.import"
    # finer actions of the existing operations (issue 14 §5: every staff change leaves one entry)
    GIFT_CREATE = "gift.create"
    GIFT_UPDATE = "gift.update"
    GIFT_LIST = "gift.list"
    GIFT_UNLIST = "gift.unlist"
    GIFT_SCHEDULE = "gift.schedule"
    GIFT_RESTOCK = "gift.restock"
    GIFT_OFFER_SET = "gift.offer_set"
    GIFT_OFFER_CLEAR = "gift.offer_clear"
    GIFT_DELETE = "gift.delete"
    ORDER_FULFIL = "order.fulfil"
    ORDER_CANCEL = "order.cancel"
    PAYMENT_CONFIRM = "order.payment_confirm"
    PARTNER_CREATE = "partner.create"
    PARTNER_UPDATE = "partner.update"
    PARTNER_UNLINK = "partner.unlink"
    WEBHOOK_ADD = "notifications.webhook_add"
    WEBHOOK_REMOVE = "notifications.webhook_remove"
    NOTIFICATION_RETRY = "notifications.retry"


@dataclass(frozen=True)
class AuditEntry:
    """One staff action: who (role, subject), what (action), on what (target kind and id), details."""

    action: AuditAction
    actor_role: str
    actor: str
    target_kind: str
    target_id: str
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    request_id: str | None = None

    def body(self) -> dict[str, Any]:
        """The fields the hash covers, as stored."""
        return {
            "action": self.action.value,
            "actorRole": self.actor_role,
            "actor": self.actor,
            "targetKind": self.target_kind,
            "targetId": self.target_id,
            "at": self.at,
            "details": plain(self.details),
            "reason": self.reason,
            "requestId": self.request_id,
        }


def plain(details: Mapping[str, Any]) -> dict[str, Any]:
    """Details as plain JSON values (times and decimals as strings), so they hash the same after storage."""
    result: dict[str, Any] = orjson.loads(orjson.dumps(dict(details), default=str, option=orjson.OPT_NON_STR_KEYS))
    return result


def _canonical(seq: int, body: Mapping[str, Any]) -> bytes:
    at = body["at"]
    rest = {k: v for k, v in body.items() if k not in ("at", "hash", "prevHash", "seq", "_id")}
    return orjson.dumps(
        {"seq": seq, "at": at.isoformat(timespec="milliseconds")[:23], **rest},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        default=str,
    )


def chain_hash(prev_hash: str, seq: int, body: Mapping[str, Any]) -> str:
    """sha256(prev hash ‖ canonical body with its sequence number), lowercase hex."""
    return hashlib.sha256(prev_hash.encode() + _canonical(seq, body)).hexdigest()


class ChainCheck:
    """The hash chain checked one entry at a time (in ``seq`` order), so a long log is verified
    while it streams instead of being held in memory."""

    def __init__(self) -> None:
        self.prev = GENESIS
        self.expected = 1
        self.broken_at: int | None = None

    def feed(self, entry: Mapping[str, Any]) -> bool:
        """Take the next entry; False once the chain is broken (``broken_at`` says where)."""
        if self.broken_at is not None:
            return False
        seq = self.expected
        if (
            int(entry["seq"]) != seq
            or entry.get("prevHash") != self.prev
            or chain_hash(self.prev, seq, entry) != entry.get("hash")
        ):
            self.broken_at = seq
            return False
        self.prev = entry["hash"]
        self.expected += 1
        return True

    def finish(self, head: tuple[int, str] | None) -> int | None:
        """Where the chain breaks, or None; ``head`` catches the newest entries deleted."""
        if self.broken_at is None and head is not None and (head[0] != self.expected - 1 or head[1] != self.prev):
            self.broken_at = self.expected
        return self.broken_at

    @property
    def checked(self) -> int:
        return self.expected - 1


def verify_chain(entries: Iterable[Mapping[str, Any]], head: tuple[int, str] | None = None) -> int | None:
    """The sequence number where the chain first breaks (in ``seq`` order), or None when intact.

    ``head`` is the last (seq, hash) the log recorded: without it, deleting the newest entries
    would go unnoticed.
    """
    check = ChainCheck()
    for entry in entries:
        if not check.feed(entry):
            break
    return check.finish(head)
