"""How a partner signs a Kafka event: the canonical bytes and HMAC-SHA256 (docs/partners.md, "Signature").

The signed bytes are the values of ``SIGNED_FIELDS`` in that order, one per line:
a missing or null field is an empty string, integers are written in decimal,
strings exactly as sent; UTF-8, joined by "\\n", no trailing newline.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import orjson

SIGNED_FIELDS = (
    "partnerId",
    "eventId",
    "type",
    "memberRef",
    "points",
    "amount",
    "direction",
    "originalEventId",
    "occurredAt",
)


def canonical(event: Mapping[str, Any]) -> bytes:
    """The bytes a partner signs."""
    return "\n".join("" if event.get(name) is None else str(event[name]) for name in SIGNED_FIELDS).encode()


def sign(event: Mapping[str, Any], secret: str) -> str:
    """HMAC-SHA256 of ``canonical(event)`` keyed with the partner's signing secret, lowercase hex."""
    return hmac.new(secret.encode(), canonical(event), hashlib.sha256).hexdigest()


def signature_matches(event: Mapping[str, Any], signature: str, secret: str) -> bool:
    """Constant-time comparison; the signature's hex case does not matter."""
    return hmac.compare_digest(sign(event, secret), signature.lower())


def signed_event(secret: str, **fields: Any) -> bytes:
    """A ready-to-publish event (used by tests, the bench and the docs' example)."""
    event = {k: v for k, v in fields.items() if v is not None}
    event["signature"] = sign(event, secret)
    return orjson.dumps(event)
