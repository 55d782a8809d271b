"""Ledger export for accountants: every entry of a period, as CSV or NDJSON.

A period is ``[start, end)``. Dates without a time are midnight in the program's timezone
(a month's statement is ``--from 2026-03-01 --to 2026-04-01``); full ISO 8601 instants are taken
as given. Entries come oldest first, as written; the ledger is append-only, so exporting the same
closed period twice gives the same file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from gateway.core.clock import as_utc
from gateway.core.errors import BadInput
from gateway.store.ledger_export import count_between, entries_between
from gateway.store.mongo import Database, Document

CSV_COLUMNS = (
    "entry_id",
    "created_at",
    "member_id",
    "seq",
    "kind",
    "points",
    "available_change",
    "pending_change",
    "reason",
    "source_type",
    "source_id",
    "partner_id",
    "idempotency_key",
    "available_after",
    "pending_after",
    "lifetime_earned_after",
    "spent_after",
    "expired_after",
)


def parse_bound(value: str, timezone: str, name: str) -> datetime:
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), ZoneInfo(timezone)).astimezone(UTC)
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"--{name} {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=ZoneInfo(timezone))
    return instant.astimezone(UTC)


def period(start: str, end: str, timezone: str) -> tuple[datetime, datetime]:
    begin, finish = parse_bound(start, timezone, "from"), parse_bound(end, timezone, "to")
    if finish <= begin:
        raise BadInput("--to must be after --from")
    return begin, finish


def _iso(value: datetime) -> str:
    return as_utc(value).isoformat().replace("+00:00", "Z")


def csv_row(entry: Document) -> list[Any]:
    delta, after, source = entry.get("delta") or {}, entry.get("balancesAfter") or {}, entry.get("source") or {}
    return [
        str(entry["_id"]),
        _iso(entry["createdAt"]),
        entry["memberId"],
        entry["seq"],
        entry["kind"],
        entry["points"],
        delta.get("available", 0),
        delta.get("pending", 0),
        entry.get("reason") or "",
        source.get("type", ""),
        source.get("id", ""),
        source.get("partnerId") or "",
        entry.get("idempotencyKey") or "",
        after.get("available", 0),
        after.get("pending", 0),
        after.get("lifetimeEarned", 0),
        after.get("spent", 0),
        after.get("expired", 0),
    ]


def json_line(entry: Document) -> bytes:
    def default(value: Any) -> str:
        if isinstance(value, datetime):
            return _iso(value)
        return str(value)  # ObjectId

    doc = {**entry, "entryId": str(entry["_id"]), "createdAt": _iso(entry["createdAt"])}
    doc.pop("_id")
    return orjson.dumps(doc, default=default, option=orjson.OPT_SORT_KEYS) + b"\n"


async def count(db: Database, start: datetime, end: datetime) -> int:
    return await count_between(db, start, end)


async def export_lines(db: Database, start: datetime, end: datetime, fmt: str) -> AsyncIterator[bytes]:
    """The file's content piece by piece: the CSV header first, then one line per entry."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue().encode()
        async for entry in entries_between(db, start, end):
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(csv_row(entry))
            yield buffer.getvalue().encode()
    elif fmt == "ndjson":
        async for entry in entries_between(db, start, end):
            yield json_line(entry)
    else:
        raise BadInput(f"format {fmt!r} is not csv or ndjson")
