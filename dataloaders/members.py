"""Batch members by id."""

from __future__ import annotations

from strawberry.dataloader import DataLoader

from gateway.features.members import Members
from gateway.store.mongo import Document


def member_loader(members: Members) -> DataLoader[str, Document | None]:
    async def load(ids: list[str]) -> list[Document | None]:
        found = await members.get_many(ids)
        return [found.get(member_id) for member_id in ids]

    return DataLoader(load_fn=load)
