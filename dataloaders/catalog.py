"""Batch loaders for the points mall: gifts by id, and a member's recent orders per gift.

A storefront page of N gifts for one member asks for N usages; the loader answers
them all with one ``redemptions`` query, so the page costs the same few round trips
whatever N is.
"""

from __future__ import annotations

from typing import Any

from strawberry.dataloader import DataLoader

from gateway.domain.catalog import UsageKey
from gateway.features.catalog import units_ordered
from gateway.store.mongo import Document


def gift_loader(services: Any) -> DataLoader[str, Document | None]:
    catalog = services.catalog

    async def load(ids: list[str]) -> list[Document | None]:
        found = await catalog.get_many(ids)
        return [found.get(gift_id) for gift_id in ids]

    return DataLoader(load_fn=load)


def usage_loader(services: Any) -> DataLoader[UsageKey, int]:
    """(memberId, giftId, window start) → units ordered since then, cancelled orders excluded."""

    async def load(keys: list[UsageKey]) -> list[int]:
        return await units_ordered(services.db, keys)

    return DataLoader(load_fn=load)
