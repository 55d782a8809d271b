"""The program's public face: tiers and their benefits."""

from __future__ import annotations

import strawberry

from resolvers.context import Info
from resolvers.program_types import Tier


@strawberry.type
class ProgramQuery:
    @strawberry.field(description="The program's tiers, lowest first. Public: storefronts show it before login.")
    async def tiers(self, info: Info) -> list[Tier]:
        program = await info.context.program()
        return [Tier.of(t) for t in program.tiers]
