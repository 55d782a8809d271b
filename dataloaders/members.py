"""Batch members by id, and their qualifying values (what tiers are judged on)."""

from __future__ import annotations

from typing import Any

from strawberry.dataloader import DataLoader

from gateway.features.members import Members
from gateway.features.tiering import windowed_values
from gateway.store.mongo import Document


def member_loader(members: Members) -> DataLoader[str, Document | None]:
    async def load(ids: list[str]) -> list[Document | None]:
        found = await members.get_many(ids)
        return [found.get(member_id) for member_id in ids]

    return DataLoader(load_fn=load)


def windowed_value_loader(context: Any) -> DataLoader[str, int]:
    """Member id → what their tier is judged on inside the program's validity window, at the
    request's instant: a list of members costs one aggregate, not one per member."""

    async def load(ids: list[str]) -> list[int]:
        program = await context.program()
        values = await windowed_values(context.services.db, ids, program, context.now)
        return [values[member_id] for member_id in ids]

    return DataLoader(load_fn=load)
