"""Demo coalition partner: a coffee chain whose points convert 10:1, with two demo members linked."""

from __future__ import annotations

from gateway.core.errors import DomainError
from gateway.domain.exchange import Rate
from gateway.features.partners import PartnerTerms
from gateway.services import Services

DEMO_PARTNER_ID = "demo-coffee"
DEMO_LINKS = [("demo-chen", "BEAN-1001"), ("demo-liu", "BEAN-1002")]


async def seed_demo_partner(services: Services) -> str:
    """Create the demo partner once; its API key and signing secret can only be shown then."""
    note = f"demo partner {DEMO_PARTNER_ID}: already there (rotatePartnerKey gives a new key)"
    if await services.db["partners"].count_documents({"_id": DEMO_PARTNER_ID}) == 0:
        terms = PartnerTerms(
            name="豆子咖啡 Bean Coffee",
            currency_name="Beans",
            rate=Rate(partner_points=10, coalition_points=1),
            settlement_milli_fen_per_point=1_000,
        )
        _, api_key, secret = await services.partners.create(terms, DEMO_PARTNER_ID)
        note = f"demo partner {DEMO_PARTNER_ID}: X-Api-Key {api_key} (signing secret {secret}); shown only now"
    for member_id, ref in DEMO_LINKS:
        try:
            await services.partners.link(member_id, DEMO_PARTNER_ID, ref)
        except DomainError:
            continue  # linked on an earlier run
    return note
