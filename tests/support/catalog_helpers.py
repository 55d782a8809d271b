"""GraphQL operations and set-up helpers shared by the catalog tests."""

from __future__ import annotations

from typing import Any

from gateway.core.auth import Role
from gateway.services import Services
from tests.conftest import GraphQLClient, token
from tests.support.ledger_helpers import add_member, earn

GIFT_FIELDS = """id name category stock status listed startsAt endsAt minTier
  price { points cash onOffer } listPrice { points cash }
  limits { perMember period perOrder } offer { points active }"""

CREATE = f"mutation($input: CreateGiftInput!) {{ createGift(input: $input) {{ {GIFT_FIELDS} }} }}"
GIFT = f"query($id: ID!, $memberId: String) {{ gift(id: $id, memberId: $memberId) {{ {GIFT_FIELDS} }} }}"
ELIGIBILITY = (
    "query($id: ID!, $memberId: String) { gift(id: $id, memberId: $memberId) "
    "{ price { points } eligibility { canRedeem reason } } }"
)
REDEEM = """
mutation($input: RedeemGiftInput!) {
  redeemGift(input: $input) { id memberId giftId quantity unitPoints points cashPaid onOffer status }
}"""
CANCEL = 'mutation($id: ID!) { cancelRedemption(id: $id, reason: "changed my mind") { id status cancelReason } }'
FULFILL = (
    'mutation($id: ID!) { fulfillRedemption(id: $id, carrier: "SF", trackingNumber: "SF123") '
    "{ id status carrier trackingNumber } }"
)


async def create_gift(gql: GraphQLClient, admin: str, **fields: Any) -> dict[str, Any]:
    """A gift on sale now: 1,500 points, ¥3,200 cost, stock 10, unless ``fields`` say otherwise."""
    input_ = {"name": "iPhone 6", "category": "phones", "costPrice": 320_000, "points": 1500, "stock": 10, **fields}
    return (await gql.ok(CREATE, {"input": input_}, token=admin))["createGift"]


async def member_with(services: Services, member_id: str, *, points: int = 0, tier: str = "SENIOR") -> str:
    """A member of ``tier`` holding ``points`` available points; returns their bearer token."""
    await add_member(services, member_id)
    await services.db.members.update_one({"_id": member_id}, {"$set": {"tier": tier}})
    if points:
        await earn(services.ledger, member_id, points)
    return token(Role.MEMBER, member_id)


async def redeem(
    gql: GraphQLClient, who: str, member_id: str, gift_id: str, key: str, quantity: int = 1, cash: int = 0
) -> dict[str, Any]:
    variables = {
        "input": {
            "memberId": member_id,
            "giftId": gift_id,
            "quantity": quantity,
            "idempotencyKey": key,
            "cashPaid": cash,
        }
    }
    return await gql(REDEEM, variables, token=who)


async def available(services: Services, member_id: str) -> int:
    return (await services.members.get(member_id))["balances"]["available"]
