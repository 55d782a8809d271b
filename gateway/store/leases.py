"""Named leases in MongoDB: at most one gateway replica holds a lease at a time.

One mechanism for every "only one replica does this" need: the Kafka balance relay
(which also stores its change-stream position on its lease) and the scheduled jobs
(points expiry, tier re-evaluation), which also record on theirs when they last ran.
Expiry times use the server's clock (``$$NOW``), so the replicas' clocks don't matter.
A holder renews well inside the TTL; when it dies, its lease expires and another
replica takes over; on a graceful stop it releases the lease at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from datetime import datetime

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from gateway.store.mongo import Database, Document

LEASES = "leases"


def new_owner() -> str:
    """A lease owner id unique to this process (host, pid, random)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lease:
    """A named lease in MongoDB; time is the server's ($$NOW) so gateways' clocks don't matter."""

    def __init__(self, db: Database, name: str, owner: str, ttl_seconds: float, *, collection: str = LEASES) -> None:
        self.collection = db[collection]
        self.name = name
        self.owner = owner
        self.ttl_ms = int(ttl_seconds * 1000)

    def _expiry(self) -> Document:
        return {"$dateAdd": {"startDate": "$$NOW", "unit": "millisecond", "amount": self.ttl_ms}}

    async def acquire(self) -> Document | None:
        """The lease document if we hold it now (fresh or renewed), else None."""
        with contextlib.suppress(DuplicateKeyError):  # from the first attempt on: expired, owned by nobody
            await self.collection.insert_one({"_id": self.name, "owner": None, "expiresAt": datetime(1970, 1, 1)})
        return await self.collection.find_one_and_update(
            {"_id": self.name, "$or": [{"owner": self.owner}, {"$expr": {"$lt": ["$expiresAt", "$$NOW"]}}]},
            [{"$set": {"owner": self.owner, "expiresAt": self._expiry(), "acquiredAt": "$$NOW"}}],
            return_document=ReturnDocument.AFTER,
        )

    async def renew(self, resume_token: Document | None = None) -> bool:
        """Extend the lease (and store the position); False when another owner took it."""
        update: Document = {"expiresAt": self._expiry()}
        if resume_token is not None:
            update["resumeToken"] = {"$literal": resume_token}
            update["storedAt"] = "$$NOW"
        result = await self.collection.update_one({"_id": self.name, "owner": self.owner}, [{"$set": update}])
        return result.matched_count == 1

    async def release(self, resume_token: Document | None = None) -> None:
        update: Document = {"expiresAt": "$$NOW"}
        if resume_token is not None:
            update["resumeToken"] = {"$literal": resume_token}
            update["storedAt"] = "$$NOW"
        await self.collection.update_one({"_id": self.name, "owner": self.owner}, [{"$set": update}])

    async def claim_run(self, interval_seconds: float) -> bool:
        """For a periodic job: True (and the run recorded as started now) if we hold the lease and
        the last run started at least ``interval_seconds`` ago, or never ran. Whoever holds the
        lease next sees the same record, so a failover or restart does not run the job early."""
        since = {"$dateSubtract": {"startDate": "$$NOW", "unit": "millisecond", "amount": int(interval_seconds * 1000)}}
        result = await self.collection.update_one(
            {
                "_id": self.name,
                "owner": self.owner,
                "$or": [{"lastRunAt": None}, {"$expr": {"$lte": ["$lastRunAt", since]}}],
            },
            [{"$set": {"lastRunAt": "$$NOW", "lastRunBy": self.owner, "expiresAt": self._expiry()}}],
        )
        return result.matched_count == 1

    async def finish_run(self, summary: str, *, error: str | None = None) -> None:
        """Record how the run that ``claim_run`` started ended (shown to operators on the lease)."""
        await self.collection.update_one(
            {"_id": self.name},
            [
                {
                    "$set": {
                        "lastFinishedAt": "$$NOW",
                        "lastSummary": {"$literal": summary},
                        "lastError": {"$literal": error},
                    }
                }
            ],
        )

    async def state(self) -> Document | None:
        return await self.collection.find_one({"_id": self.name})
