"""Demo data: a few members across every tier, so GraphiQL shows something real at once.

Members reach their tiers through real purchases (the same service as
``recordPurchase``), so their spend, growth, tier changes, ledgers and points are
genuine. Running it twice changes nothing: existing members and orders are kept.
"""

from __future__ import annotations

from datetime import date, timedelta

from gateway.core.auth import Principal, Role
from gateway.core.errors import DomainError
from gateway.demo.catalog import seed_demo_catalog
from gateway.demo.partners import seed_demo_partner
from gateway.features.members import Registration, new_member_document
from gateway.features.purchases import PurchaseRequest
from gateway.services import Services
from gateway.store import purchases as purchases_store
from gateway.store.program import load_program

DEMO_MEMBERS = [
    # id, name, email, birthday, lifetime spend (fen)
    ("demo-lin", "林小米 Lin", "lin@example.com", date(1995, 3, 8), 0),
    ("demo-wang", "王芳 Wang", "wang@example.com", date(1988, 7, 21), 12_000),
    ("demo-chen", "陈静 Chen", "chen@example.com", date(1990, 11, 2), 45_000),
    ("demo-zhao", "赵磊 Zhao", "zhao@example.com", date(1985, 1, 15), 260_000),
    ("demo-liu", "刘洋 Liu", "liu@example.com", date(1979, 5, 30), 720_000),
]
DEMO_OPERATOR = Principal(Role.ADMIN, "demo-seed")


async def seed_demo(services: Services) -> str:
    program = await load_program(services.db)
    await seed_demo_catalog(services)
    purchases = services.purchases
    created = bought = 0
    for member_id, name, email, birthday, spend in DEMO_MEMBERS:
        registration = Registration(display_name=name, email=email, birthday=birthday, member_id=member_id)
        doc = new_member_document(registration, program, services.clock.now())
        try:
            await services.members.insert(doc)
            created += 1
        except DomainError:
            pass
        if spend == 0 or await purchases_store.any_of(services.db, member_id):
            continue
        # paid a month ago, so the return window has closed and the points are spendable
        paid_at = services.clock.now() - timedelta(days=30)
        request = PurchaseRequest(
            member_id=member_id, order_id=f"demo-order-{member_id}", amount=spend, paid_at=paid_at
        )
        try:
            await purchases.record(DEMO_OPERATOR, request, f"demo-purchase-{member_id}")
            bought += 1
        except DomainError:
            continue
        await services.ledger.settle(member_id)  # the return window has closed: release the points now
    partner_note = await seed_demo_partner(services)
    return (
        f"demo data: {created} members created ({len(DEMO_MEMBERS) - created} already there), "
        f"{bought} demo purchases recorded; {partner_note}"
    )
