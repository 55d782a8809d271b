"""Partner links are proven by both sides (issue 11 item 1): a member's one-time code, redeemed by the partner.

A member can no longer claim any partner customer ref: they create a short-lived code in the
storefront (their consent), and the partner redeems it with its API key and its own customer ref.
An admin may still link directly; every link and unlink is recorded in the link history.
"""

from __future__ import annotations

from datetime import timedelta

from gateway.core.auth import Role
from tests.conftest import GraphQLClient, token
from tests.support.ledger_helpers import add_member
from tests.support.partner_helpers import add_partner

LINK = """
mutation($m: ID!, $p: ID!, $r: String!) {
  linkPartnerAccount(memberId: $m, partnerId: $p, partnerMemberRef: $r) { partnerId partnerMemberRef linkedVia }
}"""
CREATE_CODE = """
mutation($m: ID!, $p: ID!) { createPartnerLinkCode(memberId: $m, partnerId: $p) { code partnerId expiresAt } }"""
REDEEM = """
mutation($c: String!, $r: String!) {
  redeemPartnerLinkCode(code: $c, partnerMemberRef: $r) { partnerId partnerMemberRef linkedVia }
}"""
ACCRUE = """
mutation($input: PartnerAccrueInput!) { partnerAccrue(input: $input) { operation { memberId points } } }"""
ACCOUNTS = "query($m: ID!) { member(id: $m) { partnerAccounts { partnerId partnerMemberRef linkedVia } } }"
HISTORY = """
query($m: ID, $p: ID) {
  partnerLinkEvents(memberId: $m, partnerId: $p) {
    action via memberId partnerId partnerMemberRef previousPartnerMemberRef actorRole actorId
  }
}"""


async def test_a_member_can_no_longer_claim_someone_elses_partner_ref(gql: GraphQLClient, services) -> None:
    coffee = await add_partner(services, "coffee")
    await add_member(services, "ann")
    await add_member(services, "bob")
    ann = token(Role.MEMBER, "ann")
    # The attack: ann links coffee's customer "bob" to herself, so coffee's accruals for bob would credit ann.
    assert await gql.error_code(LINK, {"m": "ann", "p": "coffee", "r": "bob"}, token=ann) == "FORBIDDEN"
    assert await services.db["partner_links"].count_documents({}) == 0
    squat = {"input": {"eventId": "e1", "memberRef": "bob", "points": 5}}
    assert await gql.error_code(ACCRUE, squat, api_key=coffee.api_key) == "MEMBER_NOT_LINKED"


async def test_the_member_creates_a_code_and_the_partner_redeems_it_with_its_own_ref(
    gql: GraphQLClient, services, db
) -> None:
    coffee = await add_partner(services, "coffee")
    await add_member(services, "ann")
    ann = token(Role.MEMBER, "ann")
    created = (await gql.ok(CREATE_CODE, {"m": "ann", "p": "coffee"}, token=ann))["createPartnerLinkCode"]
    code = created["code"]
    assert created["partnerId"] == "coffee"
    assert created["expiresAt"].startswith((services.clock.now() + timedelta(minutes=10)).isoformat()[:19])
    assert code not in str(await db["partner_link_codes"].find_one({}))  # only a hash is stored

    typed = code.lower().replace("-", " ")  # read out over the counter: case and separators do not matter
    linked = await gql.ok(REDEEM, {"c": typed, "r": "C-778899"}, api_key=coffee.api_key)
    assert linked["redeemPartnerLinkCode"] == {
        "partnerId": "coffee",
        "partnerMemberRef": "C-778899",
        "linkedVia": "CODE",
    }
    accounts = await gql.ok(ACCOUNTS, {"m": "ann"}, token=ann)
    assert accounts["member"]["partnerAccounts"] == [
        {"partnerId": "coffee", "partnerMemberRef": "C-778899", "linkedVia": "CODE"}
    ]
    accrued = await gql.ok(
        ACCRUE, {"input": {"eventId": "e1", "memberRef": "C-778899", "points": 30}}, api_key=coffee.api_key
    )
    assert accrued["partnerAccrue"]["operation"] == {"memberId": "ann", "points": 30}
    # One time only.
    assert await gql.error_code(REDEEM, {"c": code, "r": "C-778899"}, api_key=coffee.api_key) == "LINK_CODE_INVALID"


async def test_codes_expire_are_replaced_and_belong_to_one_partner(gql: GraphQLClient, services, admin: str) -> None:
    coffee = await add_partner(services, "coffee")
    tea = await add_partner(services, "tea")
    await add_member(services, "ann")
    await add_member(services, "bob")
    ann = token(Role.MEMBER, "ann")

    async def new_code() -> str:
        return (await gql.ok(CREATE_CODE, {"m": "ann", "p": "coffee"}, token=ann))["createPartnerLinkCode"]["code"]

    first = await new_code()
    second = await new_code()  # a new code replaces the outstanding one
    assert await gql.error_code(REDEEM, {"c": first, "r": "C-1"}, api_key=coffee.api_key) == "LINK_CODE_INVALID"
    # Another partner cannot use it, and trying does not use it up.
    assert await gql.error_code(REDEEM, {"c": second, "r": "T-1"}, api_key=tea.api_key) == "LINK_CODE_INVALID"
    services.clock.advance(timedelta(minutes=10, seconds=1))
    assert await gql.error_code(REDEEM, {"c": second, "r": "C-1"}, api_key=coffee.api_key) == "LINK_CODE_INVALID"
    third = await new_code()
    services.clock.advance(timedelta(minutes=9, seconds=59))  # valid until expiresAt
    await gql.ok(REDEEM, {"c": third, "r": "C-1"}, api_key=coffee.api_key)

    # Only the member creates their code: not another member, not an admin, not a partner.
    bob = token(Role.MEMBER, "bob")
    assert await gql.error_code(CREATE_CODE, {"m": "ann", "p": "coffee"}, token=bob) == "FORBIDDEN"
    assert await gql.error_code(CREATE_CODE, {"m": "ann", "p": "coffee"}, token=admin) == "FORBIDDEN"
    assert await gql.error_code(CREATE_CODE, {"m": "ann", "p": "coffee"}, api_key=coffee.api_key) == "FORBIDDEN"
    assert await gql.error_code(REDEEM, {"c": third, "r": "C-1"}, token=ann) == "FORBIDDEN"
    assert await gql.error_code(CREATE_CODE, {"m": "ann", "p": "nope"}, token=ann) == "PARTNER_NOT_FOUND"
    await gql.ok('mutation { updatePartner(id: "tea", input: {active: false}) { id } }', token=admin)
    assert await gql.error_code(CREATE_CODE, {"m": "ann", "p": "tea"}, token=ann) == "PARTNER_INACTIVE"


async def test_a_taken_ref_refuses_the_redemption_whole_and_the_code_stays_usable(
    gql: GraphQLClient, services, db, admin: str
) -> None:
    coffee = await add_partner(services, "coffee")
    await add_member(services, "ann")
    await add_member(services, "bob")
    await gql.ok(LINK, {"m": "bob", "p": "coffee", "r": "C-1"}, token=admin)
    code = (await gql.ok(CREATE_CODE, {"m": "ann", "p": "coffee"}, token=token(Role.MEMBER, "ann")))[
        "createPartnerLinkCode"
    ]["code"]
    assert await gql.error_code(REDEEM, {"c": code, "r": "C-1"}, api_key=coffee.api_key) == "PARTNER_REF_TAKEN"
    assert await db["partner_links"].count_documents({"memberId": "ann"}) == 0
    assert await db["partner_link_events"].count_documents({"memberId": "ann"}) == 0
    await gql.ok(REDEEM, {"c": code, "r": "C-2"}, api_key=coffee.api_key)
    assert await db["partner_links"].count_documents({"memberId": "ann"}) == 1


async def test_links_and_unlinks_are_audited(gql: GraphQLClient, services, admin: str) -> None:
    coffee = await add_partner(services, "coffee")
    await add_member(services, "ann")
    ann = token(Role.MEMBER, "ann")
    direct = await gql.ok(LINK, {"m": "ann", "p": "coffee", "r": "C-1"}, token=admin)
    assert direct["linkPartnerAccount"]["linkedVia"] == "ADMIN"
    services.clock.advance(timedelta(seconds=1))
    await gql.ok('mutation { unlinkPartnerAccount(memberId: "ann", partnerId: "coffee") }', token=ann)
    services.clock.advance(timedelta(seconds=1))
    code = (await gql.ok(CREATE_CODE, {"m": "ann", "p": "coffee"}, token=ann))["createPartnerLinkCode"]["code"]
    await gql.ok(REDEEM, {"c": code, "r": "C-9"}, api_key=coffee.api_key)
    services.clock.advance(timedelta(seconds=1))
    await gql.ok(LINK, {"m": "ann", "p": "coffee", "r": "C-10"}, token=admin)

    history = (await gql.ok(HISTORY, {"m": "ann"}, token=admin))["partnerLinkEvents"]
    assert history == [  # newest first
        {
            "action": "LINKED",
            "via": "ADMIN",
            "memberId": "ann",
            "partnerId": "coffee",
            "partnerMemberRef": "C-10",
            "previousPartnerMemberRef": "C-9",
            "actorRole": "admin",
            "actorId": "admin-1",
        },
        {
            "action": "LINKED",
            "via": "CODE",
            "memberId": "ann",
            "partnerId": "coffee",
            "partnerMemberRef": "C-9",
            "previousPartnerMemberRef": None,
            "actorRole": "partner",
            "actorId": "coffee",
        },
        {
            "action": "UNLINKED",
            "via": "MEMBER",
            "memberId": "ann",
            "partnerId": "coffee",
            "partnerMemberRef": "C-1",
            "previousPartnerMemberRef": None,
            "actorRole": "member",
            "actorId": "ann",
        },
        {
            "action": "LINKED",
            "via": "ADMIN",
            "memberId": "ann",
            "partnerId": "coffee",
            "partnerMemberRef": "C-1",
            "previousPartnerMemberRef": None,
            "actorRole": "admin",
            "actorId": "admin-1",
        },
    ]
    assert (await gql.ok(HISTORY, {"p": "coffee"}, token=admin))["partnerLinkEvents"] == history
    assert await gql.error_code(HISTORY, {"m": "ann"}, token=ann) == "FORBIDDEN"
    assert await gql.error_code(HISTORY, {"m": "ann"}, api_key=coffee.api_key) == "FORBIDDEN"
