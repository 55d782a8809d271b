"""GraphQL operations shared by the points tests."""

from __future__ import annotations

from typing import Any

MEMBER_FIELDS = """
  id lifetimeSpend growthValue
  points { available pending lifetimeEarned spent expired }
  tier { code pricePercent benefits { code } }
"""

PURCHASE = f"""
mutation($input: RecordPurchaseInput!) {{
  recordPurchase(input: $input) {{
    orderId joined points capped availableAt tierBefore tierAfter replayed
    member {{ {MEMBER_FIELDS} }}
    entries {{ kind points reason source {{ type id }} }}
  }}
}}
"""

REFUND = f"""
mutation($input: RefundPurchaseInput!) {{
  refundPurchase(input: $input) {{
    orderId points shortfall pointsReturned tierBefore tierAfter replayed
    member {{ {MEMBER_FIELDS} }}
  }}
}}
"""

DEDUCT = f"""
mutation($input: DeductPointsInput!) {{
  deductPointsAtCheckout(input: $input) {{ orderId points valueFen replayed member {{ {MEMBER_FIELDS} }} }}
}}
"""

GRANT = f"""
mutation($input: GrantPointsInput!) {{
  grantPoints(input: $input) {{ points replayed members {{ {MEMBER_FIELDS} }} entries {{ kind points }} }}
}}
"""

CHECK_IN = f"""
mutation($id: ID!, $key: String) {{
  checkIn(memberId: $id, idempotencyKey: $key) {{
    streak points bonus capped replayed member {{ {MEMBER_FIELDS} }}
  }}
}}
"""

BEHAVIOUR = f"""
mutation($id: ID!, $event: String!, $key: String!) {{
  recordBehaviour(memberId: $id, event: $event, idempotencyKey: $key) {{
    event points capped replayed member {{ {MEMBER_FIELDS} }}
  }}
}}
"""

MEMBER = f"""
query($id: ID!) {{
  member(id: $id) {{
    {MEMBER_FIELDS}
    benefits {{ benefit {{ code quota {{ count period }} }} used remaining periodStart periodEnd }}
    expiringPoints(days: 30) {{ total days lots {{ points expiresAt }} }}
    nextTier {{ tier {{ code }} remaining }}
  }}
}}
"""

UPDATE_EARNING = """
mutation($input: EarningRulesInput!) {
  updateEarningRules(input: $input) {
    earning { purchasePoints purchaseUnitFen checkInPoints behaviours { event points } caps { rule daily monthly } }
  }
}
"""

UPDATE_PROGRAM = """
mutation($input: ProgramSettingsInput!) {
  updateProgram(input: $input) {
    pendingDays allowNegativeBalance timezone tierPolicy { basis validityDays }
    expiry { mode days } deduction { pointsPerYuan maxPercentOfOrder }
  }
}
"""


async def purchase(gql: Any, token: str, member_id: str, order_id: str, amount: int, **extra: Any) -> dict[str, Any]:
    key = extra.pop("key", f"buy-{member_id}-{order_id}")
    data = await gql.ok(
        PURCHASE,
        {"input": {"memberId": member_id, "orderId": order_id, "amount": amount, "idempotencyKey": key, **extra}},
        token=token,
    )
    return data["recordPurchase"]


async def refund(gql: Any, token: str, member_id: str, order_id: str, amount: int, key: str) -> dict[str, Any]:
    data = await gql.ok(
        REFUND,
        {"input": {"memberId": member_id, "orderId": order_id, "amount": amount, "idempotencyKey": key}},
        token=token,
    )
    return data["refundPurchase"]


async def grant(gql: Any, token: str, member_id: str, points: int, key: str, reason: str = "test") -> dict[str, Any]:
    data = await gql.ok(
        GRANT,
        {"input": {"memberId": member_id, "points": points, "reason": reason, "idempotencyKey": key}},
        token=token,
    )
    return data["grantPoints"]


async def member(gql: Any, token: str, member_id: str) -> dict[str, Any]:
    return (await gql.ok(MEMBER, {"id": member_id}, token=token))["member"]


REGISTER = "mutation($i: RegisterMemberInput!) { registerMember(input: $i) { id } }"


async def register(gql: Any, token: str, member_id: str, **fields: Any) -> None:
    await gql.ok(REGISTER, {"i": {"id": member_id, "displayName": member_id, **fields}}, token=token)
