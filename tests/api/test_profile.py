"""updateProfile: a member who joined by purchase completes their profile; admins correct it (issue 11, item 15)."""

from __future__ import annotations

from gateway.core.auth import Role
from tests.conftest import token
from tests.support.points_helpers import purchase, register

UPDATE = """
mutation($i: UpdateProfileInput!) {
  updateProfile(input: $i) { id displayName email phone birthday }
}"""


async def test_a_member_who_joined_by_purchase_completes_their_profile(gql, admin):
    await purchase(gql, admin, "shopper", "o-1", 1_000)
    me = token(Role.MEMBER, "shopper")
    changes = {
        "displayName": "  Lin Wei ",
        "email": "Lin@Example.com",
        "phone": "+86 138 0000 0000",
        "birthday": "1990-05-04",
    }
    data = await gql.ok(UPDATE, {"i": {"memberId": "shopper", **changes}}, token=me)
    assert data["updateProfile"] == {
        "id": "shopper",
        "displayName": "Lin Wei",
        "email": "lin@example.com",
        "phone": "+86 138 0000 0000",
        "birthday": "1990-05-04",
    }
    # Only the fields given change; null clears a contact field.
    data = await gql.ok(UPDATE, {"i": {"memberId": "shopper", "phone": None}}, token=me)
    assert data["updateProfile"]["phone"] is None and data["updateProfile"]["email"] == "lin@example.com"
    seen = await gql.ok("{ me { displayName email phone birthday } }", token=me)
    assert seen["me"] == {"displayName": "Lin Wei", "email": "lin@example.com", "phone": None, "birthday": "1990-05-04"}


async def test_invalid_profile_values_are_refused_and_nothing_changes(gql, admin):
    await register(gql, admin, "m", email="m@example.com")
    me = token(Role.MEMBER, "m")
    bad = [
        {"displayName": "   "},
        {"displayName": "x" * 81},
        {"displayName": None},
        {"email": "not-an-email"},
        {"phone": "call me"},
        {"birthday": "2999-01-01"},
        {"birthday": "1850-01-01"},
        {},
    ]
    for change in bad:
        body = await gql(UPDATE, {"i": {"memberId": "m", **change}}, token=me)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", change
    seen = await gql.ok("{ me { displayName email } }", token=me)
    assert seen["me"] == {"displayName": "m", "email": "m@example.com"}


async def test_email_must_stay_unique(gql, admin):
    await register(gql, admin, "a", email="a@example.com")
    await register(gql, admin, "b")
    body = await gql(UPDATE, {"i": {"memberId": "b", "email": "A@example.com"}}, token=token(Role.MEMBER, "b"))
    assert body["errors"][0]["extensions"] == {"code": "ALREADY_EXISTS", "field": "email"}


async def test_only_the_member_or_an_admin_may_change_a_profile(gql, admin):
    await register(gql, admin, "m")
    change = {"i": {"memberId": "m", "displayName": "Hijacked"}}
    assert await gql.error_code(UPDATE, change, token=token(Role.MEMBER, "other")) == "FORBIDDEN"
    assert await gql.error_code(UPDATE, change, token=token(Role.DASHBOARD, "board")) == "FORBIDDEN"
    assert await gql.error_code(UPDATE, change) == "UNAUTHENTICATED"
    data = await gql.ok(UPDATE, {"i": {"memberId": "m", "displayName": "By admin"}}, token=admin)
    assert data["updateProfile"]["displayName"] == "By admin"
    missing = {"i": {"memberId": "ghost", "displayName": "x"}}
    assert await gql.error_code(UPDATE, missing, token=admin) == "MEMBER_NOT_FOUND"


async def test_a_member_sets_their_birthday_once_and_an_admin_corrects_it(gql, admin):
    await register(gql, admin, "m")
    me = token(Role.MEMBER, "m")
    await gql.ok(UPDATE, {"i": {"memberId": "m", "birthday": "1990-05-04"}}, token=me)
    # Same value again is fine; a different day (to move the birthday bonus) is not.
    await gql.ok(UPDATE, {"i": {"memberId": "m", "birthday": "1990-05-04", "displayName": "M"}}, token=me)
    for change in ("1990-03-02", None):
        body = await gql(UPDATE, {"i": {"memberId": "m", "birthday": change}}, token=me)
        assert body["errors"][0]["extensions"] == {"code": "BIRTHDAY_LOCKED", "field": "birthday"}
    fixed = await gql.ok(UPDATE, {"i": {"memberId": "m", "birthday": "1990-03-02"}}, token=admin)
    assert fixed["updateProfile"]["birthday"] == "1990-03-02"
