"""Batch loader for the points mall: gifts by id (a member's orders list their gifts).

A storefront page's eligibility needs no loader: the ``gifts`` resolver computes the whole
page in one pass (``gateway.features.catalog.eligibilities``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from strawberry.dataloader import DataLoader

from gateway.store.mongo import Document

UsageKey = tuple[str, str, datetime]


def gift_loader(services: Any) -> DataLoader[str, Document | None]:
    catalog = services.catalog

    async def load(ids: list[str]) -> list[Document | None]:
        found = await catalog.get_many(ids)
        return [found.get(gift_id) for gift_id in ids]

    return DataLoader(load_fn=load)
