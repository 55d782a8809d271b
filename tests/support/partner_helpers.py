"""Set-up for partner tests: partners with credentials, linked members."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.auth import Principal, Role
from gateway.domain.exchange import Fee, Rate
from gateway.domain.partner_terms import Limits, PartnerTerms
from gateway.services import Services
from tests.support.ledger_helpers import add_member

SETUP = Principal(Role.ADMIN, "test-setup")


@dataclass(frozen=True)
class PartnerCredentials:
    id: str
    api_key: str
    secret: str


async def add_partner(
    services: Services,
    partner_id: str,
    *,
    rate: Rate = Rate(10, 1),
    fee: Fee | None = None,
    limits: Limits | None = None,
    milli_fen_per_point: int = 1_000,
) -> PartnerCredentials:
    terms = PartnerTerms(
        name=partner_id.title(),
        currency_name=f"{partner_id} points",
        rate=rate,
        fee=fee,
        limits=limits,
        settlement_milli_fen_per_point=milli_fen_per_point,
    )
    doc, api_key, secret = await services.partners.create(terms, partner_id=partner_id)
    return PartnerCredentials(doc["_id"], api_key, secret)


async def linked_member(services: Services, member_id: str, *partner_refs: tuple[str, str]) -> str:
    """A new member linked to each (partner id, partner member ref)."""
    await add_member(services, member_id)
    for partner_id, ref in partner_refs:
        await services.partner_links.link(SETUP, member_id, partner_id, ref)
    return member_id
