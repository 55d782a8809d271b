"""hypothesis-graphql against the app, per caller kind: no 5xx, no uncoded or leaky error, nothing over the limits.

Each caller kind sends a bounded number of generated queries and mutations (valid ones, and
invalid ones from hypothesis-graphql's negative mode) through HTTP with its real credentials.
Afterwards ``loyalty-gateway audit`` (the command, as an operator runs it) must find every
balance reconciled with the ledger. ``LOYALTY_FUZZ_CASES`` sets the cases per caller and mode.
"""

from __future__ import annotations

import os
from datetime import UTC, date
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import NameNode, ObjectFieldNode, parse
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries

from gateway.core.auth import Role
from gateway.store.mongo import Database
from resolvers.operation_limits import measure
from resolvers.schema import schema
from tests.api.test_cli import run_cli
from tests.conftest import JWT_SECRET, token
from tests.support.catalog_helpers import member_with
from tests.support.gateways import app_with
from tests.support.partner_helpers import add_partner

CASES = int(os.environ.get("LOYALTY_FUZZ_CASES", "40"))
LEAKS = ("Traceback", "pymongo", "pydantic", "MongoClient", "Internal error:", "object has no attribute", "KeyError")


def _representation(value: dict[str, str]) -> Any:
    return nodes.Object([ObjectFieldNode(name=NameNode(value=k), value=nodes.String(v)) for k, v in value.items()])


SCALARS = {
    "Date": st.dates(min_value=date(1900, 1, 1)).map(lambda d: nodes.String(d.isoformat())),
    "DateTime": st.datetimes(timezones=st.just(UTC)).map(lambda d: nodes.String(d.isoformat())),
    "_Any": st.fixed_dictionaries(
        {"__typename": st.sampled_from(["Member", "Gift"]), "id": st.sampled_from(["fuzz-member", "g-1", "x"])}
    ).map(_representation),
}


def generate(strategy: st.SearchStrategy[Any], count: int) -> list[str]:
    """``count`` generated documents (generation only: each failure is reported with its document)."""
    found: list[str] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(document: Any) -> None:
        found.append(str(document))

    collect()
    return found


def cases(count: int) -> list[str]:
    sdl = schema._schema
    return (
        generate(queries(sdl, custom_scalars=SCALARS), count)
        + generate(mutations(sdl, custom_scalars=SCALARS), count)
        + generate(queries(sdl, custom_scalars=SCALARS, mode=Mode.NEGATIVE), count)
    )


def credentials(kind: str, partner_key: str) -> dict[str, str]:
    return {
        "anonymous": {},
        "member": {"authorization": f"Bearer {token(Role.MEMBER, 'fuzz-member')}"},
        "partner": {"x-api-key": partner_key},
        "dashboard": {"authorization": f"Bearer {token(Role.DASHBOARD, 'fuzz-dash')}"},
        "admin": {"authorization": f"Bearer {token(Role.ADMIN, 'fuzz-admin')}"},
    }[kind]


def problems_of(document: str, response: httpx.Response, limits: Any) -> list[str]:
    found = []
    if response.status_code >= 500:
        found.append(f"status {response.status_code}")
    text = response.text
    found.extend(f"leaks {leak!r}" for leak in LEAKS if leak.lower() in text.lower())
    body = response.json()
    for error in body.get("errors") or []:
        if not (error.get("extensions") or {}).get("code"):
            found.append(f"uncoded error {error.get('message')!r}")
    if body.get("data") is not None:
        size = measure(schema._schema, parse(document), {}, limits)
        if size.depth > limits.max_depth or size.cost > limits.max_cost or size.aliases > limits.max_aliases:
            found.append(f"ran over the limits: {size}")
    return found


@pytest.mark.parametrize("kind", ["anonymous", "member", "partner", "dashboard", "admin"])
async def test_fuzz(kind: str, tmp_path: Path, mongo_uri: str, db: Database, services: Any) -> None:
    options = {f"rate_limit_{k}": 1_000_000 for k in ("anonymous", "member", "partner", "dashboard", "admin")}
    partner = await add_partner(services, "fuzz-partner")
    await member_with(services, "fuzz-member", points=5000, tier="VIP")
    documents = cases(CASES)
    failures: list[tuple[str, list[str]]] = []
    async with app_with(tmp_path, mongo_uri, db, **options) as app:
        limits = app.state.services.settings.operation_limits
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
            for document in documents:
                response = await http.post(
                    "/graphql", json={"query": document}, headers=credentials(kind, partner.api_key)
                )
                if found := problems_of(document, response, limits):
                    failures.append((document[:300], found))
    assert not failures, failures[:5]
    env = {
        "LOYALTY_MONGODB_URI": mongo_uri,
        "LOYALTY_DATABASE": db.db.name,
        "LOYALTY_JWT_SECRET": JWT_SECRET,
        "LOYALTY_DATA_DIR": str(tmp_path),
    }
    audit = run_cli("audit", env=env)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    print(f"fuzz {kind}: {len(documents)} cases")
