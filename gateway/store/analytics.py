"""Analytics queries: MongoDB aggregation pipelines over the ledger, and the rollups that keep
them fast at scale. Nothing here reads ledger entries into Python: every method returns
aggregated rows (a few per day or month).

Rollups (``analytics_daily``, ``analytics_cohorts``) hold per-day sums of ledger deltas for
whole local days that are *sealed*: days that ended at least ``SEAL_MARGIN`` ago, so no
transaction still in flight can add an entry to them. They are built on demand with
``$merge`` (the first query after midnight seals the day before) and never on the write
path, so ledger writes pay nothing for them. The unsealed tail (today, and yesterday during
the margin) is aggregated live from the ledger's ``createdAt`` index. Two replicas sealing at
once write identical documents (``$merge`` replaces by key), so no lock is needed.
Entries imported with a past ``createdAt`` need ``rebuild()``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway.domain.analytics import (
    EARN_KINDS,
    MEMBER_ACTIVITY_KINDS,
    Range,
    local_date,
    next_month,
    seal_boundary,
    segment_switch,
)
from gateway.store.mongo import Database, Document

DAILY = "analytics_daily"
MONTHLY = "analytics_monthly"
COHORTS = "analytics_cohorts"
COHORT_MONTHS = "analytics_cohort_months"
MONTHS = "analytics_months"
STATE = "analytics_state"
RFM = "analytics_rfm"
SEAL_MARGIN = timedelta(minutes=5)
RFM_TTL = timedelta(minutes=10)
PARTIAL_MONTH_TTL = timedelta(seconds=60)
DAY_FORMAT = "%Y-%m-%d"
MONTH_FORMAT = "%Y-%m"

SUM_FIELDS = ("earned_in", "earned_out", "spent_in", "spent_out", "expired", "available", "pending", "fee", "count")


def _positive(expr: Any) -> Any:
    return {"$max": [expr, 0]}


def _negated_positive(expr: Any) -> Any:
    return {"$max": [{"$multiply": [expr, -1]}, 0]}


def flow_group(key: Document) -> Document:
    """``$group`` summing the deltas of ledger entries by ``key``."""
    return {
        "$group": {
            "_id": key,
            "earned_in": {"$sum": _positive("$delta.lifetimeEarned")},
            "earned_out": {"$sum": _negated_positive("$delta.lifetimeEarned")},
            "spent_in": {"$sum": _positive("$delta.spent")},
            "spent_out": {"$sum": _negated_positive("$delta.spent")},
            "expired": {"$sum": "$delta.expired"},
            "available": {"$sum": "$delta.available"},
            # not spendable now but still the member's: the return window, and points held at
            # checkout or for an unpaid order (they come back if the hold is voided)
            "pending": {"$sum": {"$add": [{"$ifNull": ["$delta.pending", 0]}, {"$ifNull": ["$delta.held", 0]}]}},
            "fee": {"$sum": {"$ifNull": ["$fee", 0]}},
            "count": {"$sum": 1},
        }
    }


def _regroup(key: Document) -> Document:
    """``$group`` re-summing rollup rows (or live rows) by a coarser ``key``."""
    return {"$group": {"_id": key, **{name: {"$sum": f"${name}"} for name in SUM_FIELDS}}}


def _day(field: str, timezone: str, fmt: str = DAY_FORMAT) -> Document:
    return {"$dateToString": {"format": fmt, "date": field, "timezone": timezone}}


# Rollup shapes: which entries each covers and what it is keyed by besides day and kind.
SHAPES: dict[str, tuple[Document, Document]] = {
    "kind": ({}, {"reverses": {"$ifNull": ["$reversesKind", None]}}),
    "gift": (
        {"kind": {"$in": ["REDEMPTION", "REDEMPTION_CANCEL"]}, "giftId": {"$exists": True}},
        {"giftId": "$giftId"},
    ),
    "partner": (
        {"source.type": "PARTNER"},
        {
            "partnerId": "$source.partnerId",
            "reverses": {"$ifNull": ["$reversesKind", None]},
            # the money-per-point rate recorded on the operation (None before rates were recorded)
            "rate": {"$ifNull": ["$settlementMilliFenPerPoint", None]},
        },
    ),
}


def shape_stages(shape: str, timezone: str) -> list[Document]:
    """Ledger entries (already matched by time) → one row per local day and key of ``shape``,
    with ``shape`` and ``day`` as top-level fields (indexed in the rollup collection)."""
    match, extra = SHAPES[shape]
    stages: list[Document] = [{"$match": match}] if match else []
    key = {"day": _day("$createdAt", timezone), "kind": "$kind", **extra}
    return [*stages, flow_group(key), {"$set": {"shape": shape, "day": "$_id.day"}}]


def cohort_stages(timezone: str) -> list[Document]:
    """Per lot take of settling/spending entries: the issue month of the lot it touched and
    what the take did to that cohort (redeemed, expired, reversed)."""
    restoring = {"$lt": ["$delta.spent", 0]}
    lapsed = {"$and": [restoring, {"$lte": ["$lot.expiresAt", "$createdAt"]}]}
    points = "$lots.points"
    return [
        {"$match": {"kind": {"$nin": [*EARN_KINDS, "RELEASE"]}}},
        {"$project": {"createdAt": 1, "kind": 1, "delta": 1, "lots": 1}},
        {"$unwind": "$lots"},
        {
            "$lookup": {
                "from": "lots",
                "localField": "lots.lotId",
                "foreignField": "_id",
                "as": "lot",
                "pipeline": [{"$project": {"createdAt": 1, "expiresAt": 1}}],
            }
        },
        {"$unwind": "$lot"},
        {
            "$project": {
                "day": _day("$createdAt", timezone),
                "cohort": _day("$lot.createdAt", timezone, MONTH_FORMAT),
                "expired": {
                    "$cond": [
                        {"$or": [{"$gt": ["$delta.expired", 0]}, lapsed]},
                        {"$cond": [{"$eq": ["$kind", "EXPIRE"]}, points, {"$cond": [lapsed, points, 0]}]},
                        0,
                    ]
                },
                "reversed": {"$cond": [{"$lt": ["$delta.lifetimeEarned", 0]}, points, 0]},
                "redeemed": {
                    "$cond": [
                        {"$gt": ["$delta.spent", 0]},
                        points,
                        {"$cond": [restoring, {"$multiply": [points, -1]}, 0]},
                    ]
                },
            }
        },
    ]


def cohort_group(key: Any) -> Document:
    return {
        "$group": {
            "_id": key,
            "expired": {"$sum": "$expired"},
            "redeemed": {"$sum": "$redeemed"},
            "reversed": {"$sum": "$reversed"},
        }
    }


def rfm_score_stages(start: datetime, end: datetime) -> list[Document]:
    """Aggregation stages over ``purchases``: one row per member who paid in [start, end), with
    ``_id`` the member id and ``r``, ``f``, ``m`` their quintile scores 1..5 (recency = last
    payment, frequency = orders, monetary = paid less refunds; ties share the lower rank).

    The one RFM scoring of the gateway: the analytics count members per segment with it, and the
    member segment snapshot (``gateway.store.member_segments``) writes each member's scores.
    """
    return [
        {"$match": {"paidAt": {"$gte": start, "$lt": end}}},
        {
            "$group": {
                "_id": "$memberId",
                "last": {"$max": "$paidAt"},
                "orders": {"$sum": 1},
                "spend": {"$sum": {"$subtract": ["$amount", {"$ifNull": ["$refunded", 0]}]}},
            }
        },
        {
            "$setWindowFields": {
                "sortBy": {"last": 1},
                "output": {
                    "rRank": {"$rank": {}},
                    "n": {"$count": {}, "window": {"documents": ["unbounded", "unbounded"]}},
                },
            }
        },
        {"$setWindowFields": {"sortBy": {"orders": 1}, "output": {"fRank": {"$rank": {}}}}},
        {"$setWindowFields": {"sortBy": {"spend": 1}, "output": {"mRank": {"$rank": {}}}}},
        {
            "$project": {
                name: {
                    "$add": [
                        {"$floor": {"$divide": [{"$multiply": [{"$subtract": [f"${rank}", 1]}, 5]}, "$n"]}},
                        1,
                    ]
                }
                for name, rank in (("r", "rRank"), ("f", "fRank"), ("m", "mRank"))
            }
        },
    ]


class AnalyticsStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._sealing = asyncio.Lock()

    # --- rollups -----------------------------------------------------------------------

    async def sealed_until(self, now: datetime, timezone: str) -> datetime:
        """Seal every whole local day that can no longer change; returns where the rollups end."""
        boundary = seal_boundary(now, timezone, SEAL_MARGIN)
        state = await self.db[STATE].find_one({"_id": "ledger"})
        if state is not None and state.get("timezone") == timezone and _utc(state["sealedUntil"]) >= boundary:
            return _utc(state["sealedUntil"])
        async with self._sealing:
            state = await self.db[STATE].find_one({"_id": "ledger"})
            if state is not None and state.get("timezone") != timezone:
                await self.rebuild()
                state = None
            start = _utc(state["sealedUntil"]) if state is not None else None
            if start is not None and start >= boundary:
                return start
            created: Document = {"$lt": boundary}
            if start is not None:
                created["$gte"] = start
            match = {"$match": {"createdAt": created}}
            for shape in SHAPES:
                await self._run(
                    "ledger",
                    [match, *shape_stages(shape, timezone), {"$merge": {"into": DAILY, "whenMatched": "replace"}}],
                )
            await self._run(
                "ledger",
                [
                    match,
                    *cohort_stages(timezone),
                    cohort_group({"day": "$day", "cohort": "$cohort"}),
                    {"$merge": {"into": COHORTS, "whenMatched": "replace"}},
                ],
            )
            before = await self._compact(state, boundary, timezone)
            await self.db[STATE].update_one(
                {"_id": "ledger"},
                {"$max": {"sealedUntil": boundary, "compactedBefore": before}, "$set": {"timezone": timezone}},
                upsert=True,
            )
            return boundary

    async def _compact(self, state: Document | None, boundary: datetime, timezone: str) -> str:
        """Sum the days of every month that is now wholly sealed into one row per month
        (``analytics_monthly``, ``analytics_cohort_months``): a year of history is then a
        few hundred rows to read instead of thousands. Returns the first day not compacted."""
        before = _month_first(_day_key(boundary, timezone))
        done = state.get("compactedBefore") if state is not None else None
        if done is not None and done >= before:
            return str(done)
        days: Document = {"$lt": before}
        if done is not None:
            days["$gte"] = done
        to_month = {"$concat": [{"$substrBytes": ["$_id.day", 0, 7]}, "-01"]}
        for shape, (_, extra) in SHAPES.items():
            key = {"day": to_month, "kind": "$_id.kind", **{name: f"$_id.{name}" for name in extra}}
            await self._run(
                DAILY,
                [
                    {"$match": {"shape": shape, "day": days}},
                    _regroup(key),
                    {"$set": {"shape": shape, "day": "$_id.day"}},
                    {"$merge": {"into": MONTHLY, "whenMatched": "replace"}},
                ],
            )
        await self._run(
            COHORTS,
            [
                {"$match": {"_id.day": days}},
                cohort_group({"day": to_month, "cohort": "$_id.cohort"}),
                {"$merge": {"into": COHORT_MONTHS, "whenMatched": "replace"}},
            ],
        )
        return before

    async def _compacted_before(self, sealed: datetime, timezone: str) -> str | None:
        """Months before this day are read from the monthly rollups; never beyond the month
        of ``sealed`` (another replica may have sealed further than this query looks)."""
        state = await self.db[STATE].find_one({"_id": "ledger"}, {"compactedBefore": 1})
        done = state.get("compactedBefore") if state is not None else None
        if done is None:
            return None
        return min(str(done), _month_first(_day_key(sealed, timezone)))

    async def rebuild(self) -> None:
        """Forget every rollup (a time-zone change, or entries imported into the past)."""
        for name in (DAILY, MONTHLY, COHORTS, COHORT_MONTHS, MONTHS, STATE, RFM):
            await self.db[name].delete_many({})

    async def _run(self, collection: str, pipeline: list[Document]) -> list[Document]:
        cursor = await self.db[collection].aggregate(pipeline, allowDiskUse=True)
        return await cursor.to_list()

    # --- flows ---------------------------------------------------------------------------

    async def flow_rows(
        self,
        shape: str,
        key: Any,
        *,
        sealed: datetime,
        until: datetime,
        timezone: str,
        first_day: str | None = None,
        last_day: str | None = None,
        split_day: str | None = None,
    ) -> list[Document]:
        """Delta sums of one rollup ``shape`` for the local days ``first_day..last_day`` (None:
        unbounded) grouped by ``key``, an expression over the shape's keys (``$_id.day``,
        ``$_id.kind``, ``$_id.giftId``...): the sealed rollups plus the live tail of the ledger
        up to ``until``, each summed in MongoDB. Rows of the same key may come twice (rollup
        and tail); the caller adds them up."""
        rows_match: Document = {"shape": shape}
        days: Document = {}
        if first_day is not None:
            days["$gte"] = first_day
        if last_day is not None:
            days["$lte"] = last_day
        if days:
            rows_match["day"] = days
        sealed_day = _day_key(sealed, timezone)
        before = await self._compacted_before(sealed, timezone)
        # Whole months of the range that are compacted come from the monthly rollups, the
        # other sealed days from the daily ones (only days before the seal: another replica
        # may be sealing later days right now, and those come from the tail).
        start = first_day if first_day is None or first_day.endswith("-01") else _next_month_first(first_day)
        stop = before
        if before is not None and last_day is not None:
            stop = min(before, _next_month_first(last_day) if _is_month_end(last_day) else _month_first(last_day))
        daily_days: Document = {"day": {"$lt": sealed_day}}
        rows: list[Document] = []
        if stop is not None and (start is None or start < stop):
            monthly_days: Document = {"$lt": stop}
            if start is not None:
                monthly_days["$gte"] = start
            outside: list[Document] = [{"day": {"$gte": stop}}]
            if start is not None:
                outside.append({"day": {"$lt": start}})
            if split_day is not None and not split_day.endswith("-01"):
                # ``key`` tells days before ``split_day`` from the rest: its month stays daily.
                monthly_days["$ne"] = _month_first(split_day)
                outside.append({"day": {"$gte": _month_first(split_day), "$lt": _next_month_first(split_day)}})
            rows += await self._run(MONTHLY, [{"$match": {"shape": shape, "day": monthly_days}}, _regroup(key)])
            daily_days = {"$and": [daily_days, {"$or": outside}]}
        rows += await self._run(DAILY, [{"$match": rows_match}, {"$match": daily_days}, _regroup(key)])
        if until > sealed:
            tail = await self._run(
                "ledger",
                [
                    {"$match": {"createdAt": {"$gte": sealed, "$lt": until}}},
                    *shape_stages(shape, timezone),
                    {"$match": rows_match},
                    _regroup(key),
                ],
            )
            rows.extend(tail)
        return rows

    async def cohort_rows(self, *, sealed: datetime, timezone: str) -> list[Document]:
        """What became of each issue month's points so far: rollups plus the live tail."""
        before = await self._compacted_before(sealed, timezone)
        days: Document = {"$lt": _day_key(sealed, timezone)}
        rows: list[Document] = []
        if before is not None:
            days["$gte"] = before
            rows += await self._run(
                COHORT_MONTHS, [{"$match": {"_id.day": {"$lt": before}}}, cohort_group("$_id.cohort")]
            )
        rows += await self._run(COHORTS, [{"$match": {"_id.day": days}}, cohort_group("$_id.cohort")])
        rows += await self._run(
            "ledger",
            [
                {"$match": {"createdAt": {"$gte": sealed}}},
                *cohort_stages(timezone),
                cohort_group("$cohort"),
            ],
        )
        return rows

    # --- members -------------------------------------------------------------------------

    async def members_by_tier(self, tier_codes: list[str]) -> dict[str, int]:
        counts = await asyncio.gather(*(self.db.members.count_documents({"tier": code}) for code in tier_codes))
        return dict(zip(tier_codes, counts, strict=True))

    async def member_months(
        self, months: list[tuple[str, datetime, datetime, bool]], timezone: str, now: datetime
    ) -> dict[str, Document]:
        """New and active members per month. ``months`` = (key, start, end, whole): a whole
        month whose every day is sealed is computed once and kept; a partial one (the current
        month) is kept for ``PARTIAL_MONTH_TTL``, as counting distinct members scans its entries."""
        fresh = now - PARTIAL_MONTH_TTL
        cached = {
            d["_id"]["month"]: d
            async for d in self.db[MONTHS].find({"_id.month": {"$in": [m[0] for m in months]}, "_id.tz": timezone})
        }
        wanted = {m[0]: m for m in months}
        cached = {
            k: d
            for k, d in cached.items()
            if (d.get("whole") and wanted[k][3])
            or (not wanted[k][3] and d.get("window") == [wanted[k][1], wanted[k][2]])
            and _utc(d["computedAt"]) > fresh
        }
        missing = [m for m in months if m[0] not in cached]
        results = await asyncio.gather(*(self._member_month(start, end) for _, start, end, _ in missing))
        for (key, start, end, whole), (new, active) in zip(missing, results, strict=True):
            doc = {
                "_id": {"month": key, "tz": timezone},
                "newMembers": new,
                "activeMembers": active,
                "whole": whole,
                "window": [start, end],
                "computedAt": now,
            }
            cached[key] = doc
            await self.db[MONTHS].replace_one({"_id": doc["_id"]}, doc, upsert=True)
        return cached

    async def _member_month(self, start: datetime, end: datetime) -> tuple[int, int]:
        new = await self.db.members.count_documents({"registeredAt": {"$gte": start, "$lt": end}})
        rows = await self._run(
            "ledger",
            [
                {"$match": {"createdAt": {"$gte": start, "$lt": end}, "kind": {"$in": list(MEMBER_ACTIVITY_KINDS)}}},
                {"$group": {"_id": "$memberId"}},
                {"$count": "members"},
            ],
        )
        return new, rows[0]["members"] if rows else 0

    async def rfm(self, span: Range, now: datetime) -> list[Document]:
        """Members per RFM segment over purchases paid in the range (net of refunds); cached
        for ``RFM_TTL`` per range, as segments move slowly and the pipeline sorts every buyer."""
        key = {"from": span.start.isoformat(), "to": span.end.isoformat(), "tz": span.timezone}
        cached = await self.db[RFM].find_one({"_id": key})
        if cached is not None and _utc(cached["computedAt"]) > now - RFM_TTL:
            return list(cached["segments"])
        rows = await self._run(
            "purchases",
            [
                *rfm_score_stages(span.start_at, span.end_at),
                {"$group": {"_id": segment_switch("$r", "$f", "$m"), "members": {"$sum": 1}}},
            ],
        )
        segments = [{"segment": row["_id"], "members": row["members"]} for row in rows]
        await self.db[RFM].replace_one({"_id": key}, {"_id": key, "segments": segments, "computedAt": now}, upsert=True)
        return segments

    # --- names -----------------------------------------------------------------------------

    async def gift_names(self, gift_ids: list[Any]) -> dict[Any, str]:
        return {
            d["_id"]: d.get("name", "") async for d in self.db["gifts"].find({"_id": {"$in": gift_ids}}, {"name": 1})
        }

    async def partners(self) -> list[Document]:
        return [
            d
            async for d in self.db["partners"].find({}, {"name": 1, "settlementMilliFenPerPoint": 1, "currencyName": 1})
        ]

    async def listed_gift_costs(self) -> list[Document]:
        return [
            d
            async for d in self.db["gifts"].find(
                {"listed": True, "points": {"$gt": 0}}, {"costPrice": 1, "cash": 1, "points": 1}
            )
        ]


def _month_first(day: str) -> str:
    return day[:7] + "-01"


def _next_month_first(day: str) -> str:
    return next_month(date.fromisoformat(_month_first(day))).isoformat()


def _is_month_end(day: str) -> bool:
    return (date.fromisoformat(day) + timedelta(days=1)).day == 1


def _day_key(instant: datetime, timezone: str) -> str:
    return local_date(instant, timezone).isoformat()


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
