"""Import runs repository: where each CSV import got to, so an interrupted one resumes.

One document per (kind, batch): the fingerprint of the file it was reading, the line after the
last one it finished, its tallies so far, and whether it finished. Rows are idempotent on their
own, so a checkpoint that lags a few rows behind only means those rows are looked at again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.store.mongo import Database, Document

RUNS = "import_runs"


def run_id(kind: str, batch: str) -> str:
    return f"{kind}:{batch}"


async def load_run(db: Database, kind: str, batch: str) -> Document | None:
    return await db[RUNS].find_one({"_id": run_id(kind, batch)})


async def save_run(
    db: Database,
    kind: str,
    batch: str,
    *,
    fingerprint: str,
    next_line: int,
    counts: dict[str, int],
    failures: list[dict[str, Any]],
    finished: bool,
    now: datetime,
    started: bool = False,
) -> None:
    update: dict[str, Any] = {
        "$set": {
            "kind": kind,
            "batch": batch,
            "fingerprint": fingerprint,
            "nextLine": next_line,
            "counts": counts,
            "failures": failures,
            "finished": finished,
            "updatedAt": now,
        }
    }
    if started:
        update["$set"]["startedAt"] = now
    await db[RUNS].update_one({"_id": run_id(kind, batch)}, update, upsert=True)
