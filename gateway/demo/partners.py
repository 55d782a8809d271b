"""Demo coalition partner: a coffee chain whose points convert 10:1, with two demo members linked."""

from __future__ import annotations

from gateway.core.auth import Principal, Role
from gateway.core.errors import DomainError
from gateway.domain.exchange import Rate
from gateway.domain.partner_terms import PartnerTerms
from gateway.services import Services

DEMO_PARTNER_ID = "demo-coffee"
DEMO_LINKS = [("demo-chen", "BEAN-1001"), ("demo-liu", "BEAN-1002")]
SEEDER = Principal(Role.ADMIN, "demo-seed")


async def seed_demo_partner(services: Services) -> str:
    """Create the demo partner once; its API key and signing secret can only be shown then."""
    note = f"demo partner {DEMO_PARTNER_ID}: already there (rotatePartnerKey gives a new key)"
    if not await services.partners.exists(DEMO_PARTNER_ID):
        terms = PartnerTerms(
            name="豆子咖啡 Bean Coffee",
            currency_name="Beans",
            rate=Rate(partner_points=10, coalition_points=1),
            settlement_milli_fen_per_point=1_000,
        )
        _, api_key, secret = await services.partners.create(terms, DEMO_PARTNER_ID)
        note = f"demo partner {DEMO_PARTNER_ID}: X-Api-Key {api_key} (signing secret {secret}); shown only now"
    for member_id, ref in DEMO_LINKS:
        if any(
            link["partnerId"] == DEMO_PARTNER_ID for link in await services.partner_links.links_for_member(member_id)
        ):
            continue  # linked on an earlier run
        try:
            await services.partner_links.link(SEEDER, member_id, DEMO_PARTNER_ID, ref)
        except DomainError:
            continue  # the demo member is missing, or the partner was deactivated
    return note
