"""Batch loaders for the points mall: gifts by id, and a member's recent orders per gift.

A storefront page of N gifts for one member asks for N usages; the loader answers
them all with one ``redemptions`` query, so the page costs the same few round trips
whatever N is.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from strawberry.dataloader import DataLoader

from gateway.core.clock import as_utc
from gateway.store.mongo import Document

UsageKey = tuple[str, str, datetime]


def gift_loader(services: Any) -> DataLoader[str, Document | None]:
    catalog = services.catalog

    async def load(ids: list[str]) -> list[Document | None]:
        found = await catalog.get_many(ids)
        return [found.get(gift_id) for gift_id in ids]

    return DataLoader(load_fn=load)


def usage_loader(services: Any) -> DataLoader[UsageKey, int]:
    """(memberId, giftId, window start) → units ordered since then, cancelled orders excluded."""

    async def load(keys: list[UsageKey]) -> list[int]:
        members = sorted({k[0] for k in keys})
        gifts = sorted({k[1] for k in keys})
        cursor = services.db["redemptions"].find(
            {
                "memberId": {"$in": members},
                "giftId": {"$in": gifts},
                "status": {"$ne": "CANCELLED"},
                "createdAt": {"$gte": min(k[2] for k in keys)},
            },
            {"memberId": 1, "giftId": 1, "quantity": 1, "createdAt": 1},
        )
        orders: dict[tuple[str, str], list[tuple[datetime, int]]] = defaultdict(list)
        async for order in cursor:
            orders[(order["memberId"], order["giftId"])].append((as_utc(order["createdAt"]), order["quantity"]))
        return [sum(q for at, q in orders[(m, g)] if at >= since) for m, g, since in keys]

    return DataLoader(load_fn=load)
