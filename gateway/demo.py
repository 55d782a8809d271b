"""Demo data: a few members across every tier, so GraphiQL shows something real at once."""

from __future__ import annotations

from datetime import date

from gateway.demo_catalog import seed_demo_catalog
from gateway.domain.tiers import tier_for
from gateway.errors import DomainError
from gateway.members import Registration, new_member_document
from gateway.program_store import load_program
from gateway.services import Services

DEMO_MEMBERS = [
    # id, name, email, birthday, lifetime spend (fen)
    ("demo-lin", "林小米 Lin", "lin@example.com", date(1995, 3, 8), 0),
    ("demo-wang", "王芳 Wang", "wang@example.com", date(1988, 7, 21), 12_000),
    ("demo-chen", "陈静 Chen", "chen@example.com", date(1990, 11, 2), 45_000),
    ("demo-zhao", "赵磊 Zhao", "zhao@example.com", date(1985, 1, 15), 260_000),
    ("demo-liu", "刘洋 Liu", "liu@example.com", date(1979, 5, 30), 720_000),
]


async def seed_demo(services: Services) -> str:
    program = await load_program(services.db)
    await seed_demo_catalog(services)
    created = 0
    for member_id, name, email, birthday, spend in DEMO_MEMBERS:
        registration = Registration(display_name=name, email=email, birthday=birthday, member_id=member_id)
        doc = new_member_document(registration, program, services.clock.now())
        doc["lifetimeSpend"] = spend
        doc["tier"] = tier_for(spend, program.tiers).code
        try:
            await services.members.insert(doc)
            created += 1
        except DomainError:
            continue
    return f"demo data: {created} members created ({len(DEMO_MEMBERS) - created} already there)"
