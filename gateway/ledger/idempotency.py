"""Idempotency: a client's promise that repeating a key means repeating the same request.

The unit of work (gateway/ledger/unit_of_work.py) stores the request's result under the
key in the same transaction as its effects (``record``); a later request with the key gets
that result back, marked ``replayed`` (``replay``), or ``IDEMPOTENCY_CONFLICT`` if it asked
for something else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from gateway.core.auth import Principal
from gateway.core.errors import BadInput, IdempotencyConflict
from gateway.store.mongo import Document


@dataclass(frozen=True)
class Idempotency:
    """``scope`` names the caller (so two clients' keys never collide); ``payload``
    is what the request asked for, compared on replay."""

    scope: str
    key: str
    payload: dict[str, Any]

    @classmethod
    def for_caller(cls, principal: Principal, key: str, operation: str, **payload: Any) -> Idempotency:
        """Keys are scoped to the caller; the operation name is part of what must match."""
        return cls(
            scope=f"{principal.role.value}:{principal.subject}", key=key, payload={"operation": operation, **payload}
        )

    @property
    def record_id(self) -> str:
        return f"{self.scope}:{self.key}"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(orjson.dumps(self.payload, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()

    def validated(self) -> Idempotency:
        if not 1 <= len(self.key) <= 200:
            raise BadInput("idempotencyKey must be 1 to 200 characters", field="idempotencyKey")
        return self

    def record(self, result: Document, now: datetime) -> Document:
        """What is stored under the key: the request's fingerprint and its result."""
        return {"_id": self.record_id, "fingerprint": self.fingerprint, "result": result, "createdAt": now}

    def replay(self, record: Document) -> Document:
        """The first request's result from its record; a different request under the key is a conflict."""
        if record["fingerprint"] != self.fingerprint:
            raise IdempotencyConflict(
                "This idempotencyKey was already used for a different request", idempotencyKey=self.key
            )
        return {**record["result"], "replayed": True}
