"""The gateway's executor (resolvers/executor.py) answers exactly what graphql-core's answers.

Plain data fields are completed by the executor's own one-pass plans, falling back to
graphql-core for anything unusual; these tests run the same documents over the same values,
well-formed and broken (nulls in non-null fields, values of the wrong type, exceptions,
awaitables, generators where lists are expected), through the gateway's executor and through
graphql-core's, and compare data and errors. And a finished request leaves no reference cycle
behind: its context is freed by reference counting alone.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import strawberry
from graphql.execution.incremental import IncrementalExecutor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strawberry.extensions import ParserCache

from bench.storefront import STOREFRONT  # the document bench.storefront measures
from gateway.core.clock import FrozenClock
from gateway.services import Services
from resolvers.context import Context
from resolvers.executor import GatewayExecutor
from resolvers.schema import schema as gateway_schema
from tests.conftest import GraphQLClient
from tests.support.catalog_helpers import create_gift, member_with, redeem


@strawberry.enum
class Colour(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Leaf:
    name: str
    count: int
    ratio: float
    flag: bool
    ident: strawberry.ID
    colour: Colour
    at: datetime
    maybe: str | None
    tags: list[str]
    maybe_tags: list[str | None] | None


@strawberry.type
class Node:
    leaf: Leaf
    maybe_leaf: Leaf | None
    children: list[Leaf]
    maybe_children: list[Leaf | None] | None

    @strawberry.field
    def computed(self) -> int:  # a resolver: never part of a plain plan
        return 7


@strawberry.type
class Query:
    node: Node | None
    nodes: list[Node | None]
    strict_nodes: list[Node]


fast = strawberry.Schema(query=Query, execution_context_class=GatewayExecutor)
# As in the gateway: a repeated document is the same parsed object, so requests share its plans.
fast_cached = strawberry.Schema(query=Query, execution_context_class=GatewayExecutor, extensions=[ParserCache])
standard = strawberry.Schema(query=Query)

LEAF_FIELDS = "name count ratio flag ident colour at maybe tags maybeTags"
DOCUMENTS = [
    f"{{ node {{ leaf {{ {LEAF_FIELDS} }} maybeLeaf {{ name }} children {{ {LEAF_FIELDS} }} }} }}",
    f"{{ nodes {{ __typename computed leaf {{ {LEAF_FIELDS} __typename }} maybeChildren {{ name colour }} }} }}",
    f"{{ strictNodes {{ maybeLeaf {{ {LEAF_FIELDS} }} children {{ count tags }} }} }}",
    "{ node { ...N leaf { name } } nodes { first: leaf { n: name } second: leaf { name count } } }"
    " fragment N on Node { leaf { count ... on Leaf { name flag } } children { at } }",
    "query Q($skip: Boolean!, $include: Boolean!) { node { leaf { name @skip(if: $skip) count @include(if: $include)"
    " maybe } maybeLeaf @include(if: $include) { colour } } }",
]


def good_leaf(i: int) -> Leaf:
    return Leaf(
        name=f"gift {i}",
        count=i,
        ratio=i / 3,
        flag=i % 2 == 0,
        ident=strawberry.ID(f"id-{i}"),
        colour=Colour.RED if i % 2 else Colour.BLUE,
        at=datetime(2026, 3, i % 28 + 1, tzinfo=UTC),
        maybe=None if i % 3 else "x",
        tags=["a", "b"][: i % 3],
        maybe_tags=None if i % 4 == 0 else ["t", None],
    )


class Odd:
    """Not a Leaf: it has none of Leaf's attributes."""

    def __str__(self) -> str:
        return "odd"


class Later:
    """An awaitable value (a resolver's result that is not ready), harmless if never awaited."""

    def __await__(self) -> Any:
        return iter(())  # a finished awaitable: ``await Later()`` is None


ODD = {
    "none": lambda: None,
    "str": lambda: "not a number",
    "big": lambda: 2**40,
    "nan": lambda: float("nan"),
    "exception": lambda: ValueError("broken"),
    "awaitable": Later,
    "odd": Odd,
    "generator": lambda: (good_leaf(n) for n in range(2)),  # read once: the fast path must not touch it
    "tuple": lambda: (good_leaf(1), good_leaf(2)),
}
odd = st.sampled_from(sorted(ODD))

# A value is described, then built afresh for each executor (a generator can be read only once).
leaf_specs = st.tuples(
    st.integers(1, 50), st.dictionaries(st.sampled_from(sorted(Leaf.__annotations__)), odd, max_size=2)
)
node_specs = st.fixed_dictionaries(
    {
        "leaf": leaf_specs,
        "maybe_leaf": st.none() | leaf_specs,
        "children": st.lists(leaf_specs, max_size=3),
        "maybe_children": st.none() | st.lists(st.none() | leaf_specs, max_size=3),
        "odd": st.none() | st.tuples(st.sampled_from(sorted(Node.__annotations__)), odd),
    }
)
root_specs = st.fixed_dictionaries(
    {
        "node": st.none() | node_specs,
        "nodes": st.lists(st.none() | node_specs, max_size=3),
        "strict_nodes": st.lists(node_specs, max_size=2),
    }
)


def build_leaf(spec: Any) -> Leaf | None:
    if spec is None:
        return None
    number, odd_fields = spec
    leaf = good_leaf(number)
    for name, kind in odd_fields.items():
        setattr(leaf, name, ODD[kind]())
    return leaf


def build_node(spec: Any) -> Node | None:
    if spec is None:
        return None
    node = Node(
        leaf=build_leaf(spec["leaf"]),  # type: ignore[arg-type]
        maybe_leaf=build_leaf(spec["maybe_leaf"]),
        children=[build_leaf(c) for c in spec["children"]],  # type: ignore[misc]
        maybe_children=None if spec["maybe_children"] is None else [build_leaf(c) for c in spec["maybe_children"]],
    )
    if spec["odd"] is not None:
        name, kind = spec["odd"]
        setattr(node, name, ODD[kind]())
    return node


def build_root(spec: Any) -> Query:
    return Query(
        node=build_node(spec["node"]),
        nodes=[build_node(n) for n in spec["nodes"]],
        strict_nodes=[build_node(n) for n in spec["strict_nodes"]],  # type: ignore[misc]
    )


def outcome(result: Any) -> tuple[Any, list[Any]]:
    errors = [(e.message, e.path, [(loc.line, loc.column) for loc in e.locations or []]) for e in result.errors or []]
    return result.data, errors


async def both(document: str, root: Any, variables: dict[str, Any] | None = None) -> None:
    """``root``: the root value, or a function building a fresh one for each executor."""
    build = root if callable(root) else lambda: root
    expected = outcome(await standard.execute(document, root_value=build(), variable_values=variables))
    for schema in (fast, fast_cached):
        assert outcome(await schema.execute(document, root_value=build(), variable_values=variables)) == expected


async def test_well_formed_values_answer_alike() -> None:
    root = Query(
        node=Node(leaf=good_leaf(1), maybe_leaf=None, children=[good_leaf(2), good_leaf(3)], maybe_children=None),
        nodes=[
            None,
            Node(leaf=good_leaf(4), maybe_leaf=good_leaf(5), children=[], maybe_children=[None, good_leaf(6)]),
        ],
        strict_nodes=[Node(leaf=good_leaf(7), maybe_leaf=good_leaf(8), children=[good_leaf(9)], maybe_children=[])],
    )
    for document in DOCUMENTS:
        for variables in ({"skip": False, "include": True}, {"skip": True, "include": False}):
            result = await fast.execute(document, root_value=root, variable_values=variables)
            assert not result.errors, result.errors
            await both(document, root, variables)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=root_specs, document=st.sampled_from(DOCUMENTS), skip=st.booleans(), include=st.booleans())
def test_broken_values_answer_with_graphql_cores_errors(spec: Any, document: str, skip: bool, include: bool) -> None:
    asyncio.run(both(document, lambda: build_root(spec), {"skip": skip, "include": include}))


async def test_a_finished_request_is_freed_without_the_cycle_collector(services: Services) -> None:
    context = Context(services=services, principal=None)
    gc.collect()
    gc.disable()
    try:
        result = await gateway_schema.execute("{ tiers { code } }", context_value=context)
        assert not result.errors, result.errors
        assert result.data and result.data["tiers"]
        freed = weakref.ref(context)
        del context, result
        assert freed() is None, [type(r).__name__ for r in gc.get_referrers(freed())]
    finally:
        gc.enable()


async def test_a_selection_with_a_resolver_field_answers_alike() -> None:
    root = Query(
        node=Node(leaf=good_leaf(1), maybe_leaf=None, children=[], maybe_children=None), nodes=[], strict_nodes=[]
    )
    await both("{ node { computed leaf { name } } }", root)


SET_OFFER = "mutation($id: ID!, $input: GiftOfferInput!) { setGiftOffer(id: $id, input: $input) { id } }"


async def test_the_storefront_page_answers_as_graphql_core_would(
    gql: GraphQLClient, admin: str, services: Services, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await member_with(services, "alice", points=5_000, tier="VIP")
    gifts = [
        await create_gift(gql, admin, name="Kettle", points=1_200, imageUrl="https://img.example/k.png"),
        await create_gift(gql, admin, name="Tea", points=9_000, limits={"perMember": 1, "period": "MONTH"}),
        await create_gift(gql, admin, name="Suitcase", points=3_000, cash=500, minTier="SUPREME_VIP"),
        await create_gift(gql, admin, name="Mug", points=800, stock=2, limits={"perMember": 1, "period": "DAY"}),
    ]
    offer = {"points": 700, "startsAt": clock.now().isoformat(), "endsAt": (clock.now().replace(year=2027)).isoformat()}
    await gql.ok(SET_OFFER, {"id": gifts[1]["id"], "input": offer}, token=admin)
    assert "errors" not in await redeem(gql, alice, "alice", gifts[3]["id"], "mug-1")
    request = {
        "json": {"query": STOREFRONT, "variables": {"memberId": "alice"}},
        "headers": {"Authorization": f"Bearer {alice}"},
    }

    fast = await gql.http.post("/graphql", **request)
    monkeypatch.setattr(GatewayExecutor, "complete_object_value", IncrementalExecutor.complete_object_value)
    standard = await gql.http.post("/graphql", **request)

    assert fast.content == standard.content
    page = fast.json()["data"]["gifts"]["edges"]
    assert {edge["node"]["name"]: edge["node"]["eligibility"]["reason"] for edge in page} == {
        "Kettle": None,
        "Tea": None,
        "Suitcase": "TIER_TOO_LOW",
        "Mug": "LIMIT_REACHED",
    }
