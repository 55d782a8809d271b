"""The hand-written baseline for bench.storefront: Starlette + PyMongo, no GraphQL.

What a developer would write for exactly one page: verify the member's JWT, read the
member, the program document and a page of gifts concurrently, then the member's orders
of the page's limited gifts, compute tier, next tier, prices and eligibility by hand
from the raw documents, and encode with orjson. It answers the same two documents as
the gateway (``STOREFRONT`` and ``TIERS`` in bench.storefront) with byte-identical JSON;
the benchmark checks that before it measures.

Served by ``uvicorn bench.storefront_bare:app`` with BENCH_MONGODB_URI, BENCH_DATABASE
and BENCH_JWT_SECRET in the environment.
"""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import jwt
import orjson
from pymongo import AsyncMongoClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(os.environ.get("BENCH_MONGODB_URI"), tz_aware=True)
db = client[os.environ.get("BENCH_DATABASE", "bench_storefront")]
SECRET = os.environ.get("BENCH_JWT_SECRET", "")
PAGE = 20


def utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def window_start(now: datetime, period: str, timezone: str) -> datetime:
    local = now.astimezone(ZoneInfo(timezone)).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "WEEK":
        local -= timedelta(days=local.weekday())
    elif period == "MONTH":
        local = local.replace(day=1)
    return local.astimezone(UTC)


def gift_json(
    gift: dict[str, Any], member: dict[str, Any], tiers: list[dict[str, Any]], used: int, now: datetime
) -> Any:
    offer = gift.get("offer")
    on_offer = offer is not None and utc(offer["startsAt"]) <= now < utc(offer["endsAt"])
    points = offer["points"] if on_offer else gift["points"]
    started = gift.get("listFrom") is None or utc(gift["listFrom"]) <= now
    ended = gift.get("listUntil") is not None and now >= utc(gift["listUntil"])
    if not gift["listed"]:
        status = "UNLISTED"
    elif not started:
        status = "SCHEDULED"
    elif ended:
        status = "ENDED"
    elif gift["stock"] <= 0:
        status = "SOLD_OUT"
    else:
        status = "ON_SALE"
    codes = [t["code"] for t in tiers]
    limits = gift.get("limits") or {}
    reason = None
    if not gift["listed"] or not started or ended:
        reason = "NOT_LISTED"
    elif gift["stock"] <= 0:
        reason = "OUT_OF_STOCK"
    elif (
        member["tier"] not in codes
        or codes.index(member["tier"]) < codes.index(gift["minTier"])
        or not tiers[codes.index(member["tier"])]["can_redeem_gifts"]
    ):
        reason = "TIER_TOO_LOW"
    elif (limits.get("perOrder") is not None and limits["perOrder"] < 1) or (
        limits.get("perMember") is not None and used + 1 > limits["perMember"]
    ):
        reason = "LIMIT_REACHED"
    elif member["balances"]["available"] < points:
        reason = "INSUFFICIENT_POINTS"
    return {
        "id": gift["_id"],
        "name": gift["name"],
        "category": gift["category"],
        "imageUrl": gift.get("imageUrl"),
        "price": {"points": points, "cash": gift["cash"], "onOffer": on_offer},
        "status": status,
        "eligibility": {"canRedeem": reason is None, "reason": reason},
    }


def cursor(gift: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(f"{utc(gift['createdAt']).isoformat()}|{gift['_id']}".encode()).decode()


async def storefront(member_id: str) -> Any:
    now = datetime.now(UTC)
    offered = {
        "listed": True,
        "stock": {"$gt": 0},
        "$and": [
            {"$or": [{"listFrom": None}, {"listFrom": {"$lte": now}}]},
            {"$or": [{"listUntil": None}, {"listUntil": {"$gt": now}}]},
        ],
    }
    member, program, gifts = await asyncio.gather(
        db.members.find_one({"_id": member_id}),
        db.program.find_one({"_id": "current"}),
        db.gifts.find(offered).sort([("createdAt", 1), ("_id", 1)]).limit(PAGE + 1).to_list(),
    )
    config = program["config"]
    tiers = config["tiers"]
    since = {}
    for gift in gifts[:PAGE]:
        limits = gift.get("limits") or {}
        if limits.get("perMember") is not None and limits.get("period"):
            since[gift["_id"]] = window_start(now, limits["period"], config["timezone"])
    used = dict.fromkeys(since, 0)
    if since:
        orders = db.redemptions.find(
            {
                "memberId": member_id,
                "giftId": {"$in": list(since)},
                "status": {"$ne": "CANCELLED"},
                "createdAt": {"$gte": min(since.values())},
            },
            {"giftId": 1, "quantity": 1, "createdAt": 1},
        )
        async for order in orders:
            if utc(order["createdAt"]) >= since[order["giftId"]]:
                used[order["giftId"]] += order["quantity"]
    codes = [t["code"] for t in tiers]
    held = codes.index(member["tier"]) if member["tier"] in codes else 0
    value = member["growth"] if config["tier_policy"]["basis"] == "GROWTH" else member["lifetimeSpend"]
    reached = 0
    for i, tier in enumerate(tiers):
        if value >= tier["threshold"]:
            reached = i
    rank = max(held, reached)
    next_tier = None
    if rank + 1 < len(tiers):
        upcoming = tiers[rank + 1]
        next_tier = {
            "tier": {"code": upcoming["code"], "name": upcoming["name"]},
            "remaining": max(upcoming["threshold"] - value, 0),
        }
    page = gifts[:PAGE]
    edges = [{"cursor": cursor(g), "node": gift_json(g, member, tiers, used.get(g["_id"], 0), now)} for g in page]
    balances = member["balances"]
    return {
        "data": {
            "me": {
                "id": member["_id"],
                "displayName": member["displayName"],
                "tier": {"code": tiers[held]["code"], "name": tiers[held]["name"]},
                "points": {"available": balances["available"], "pending": balances["pending"]},
                "nextTier": next_tier,
            },
            "gifts": {
                "edges": edges,
                "pageInfo": {"hasNextPage": len(gifts) > PAGE, "endCursor": edges[-1]["cursor"] if edges else None},
            },
        }
    }


async def graphql(request: Request) -> Response:
    body = orjson.loads(await request.body())
    if body["query"].startswith("{ tiers"):
        program = await db.program.find_one({"_id": "current"})
        data: Any = {"data": {"tiers": [{"code": t["code"]} for t in program["config"]["tiers"]]}}
    else:
        token = request.headers["authorization"].partition(" ")[2]
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        data = await storefront(claims["sub"])
    return Response(orjson.dumps(data), media_type="application/json")


app = Starlette(routes=[Route("/graphql", graphql, methods=["POST"])])
