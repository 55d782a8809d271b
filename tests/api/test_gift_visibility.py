"""Every way of reaching a gift follows the catalog's one visibility rule (issue 11, item 11)."""

from __future__ import annotations

from gateway.core.auth import Role
from tests.conftest import token
from tests.support.catalog_helpers import GIFT, create_gift

ENTITIES = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Gift { id name } } }"


def refs(*ids: str) -> dict:
    return {"r": [{"__typename": "Gift", "id": gift_id} for gift_id in ids]}


async def test_entities_hide_what_gift_by_id_hides(gql, admin):
    shown = await create_gift(gql, admin, name="On sale")
    secret = await create_gift(gql, admin, name="Secret launch", listed=False)
    for caller in (None, token(Role.MEMBER, "m"), token(Role.DASHBOARD, "board")):
        assert await gql.error_code(GIFT, {"id": secret["id"]}, token=caller) == "GIFT_NOT_FOUND"
        body = await gql(ENTITIES, refs(shown["id"], secret["id"]), token=caller)
        assert body["data"]["_entities"] == [{"id": shown["id"], "name": "On sale"}, None]
        assert [e["extensions"]["code"] for e in body["errors"]] == ["GIFT_NOT_FOUND"]
        assert "Secret" not in str(body)
    seen = await gql.ok(ENTITIES, refs(secret["id"]), token=admin)
    assert seen["_entities"][0]["id"] == secret["id"]
    assert (await gql.ok(GIFT, {"id": secret["id"]}, token=admin))["gift"]["id"] == secret["id"]


async def test_an_unknown_gift_reference_is_not_found(gql):
    body = await gql(ENTITIES, refs("nope"))
    assert body["data"]["_entities"] == [None]
    assert body["errors"][0]["extensions"]["code"] == "GIFT_NOT_FOUND"
