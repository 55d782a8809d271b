"""The error codes a client can receive in ``extensions.code``: one table, each with its meaning."""

from __future__ import annotations

# Every ``extensions.code`` a client can receive, with its meaning. A new code is added here;
# tests/unit/test_error_codes.py fails when code raises one that is missing.
CODES: dict[str, str] = {
    # callers
    "UNAUTHENTICATED": "the credential is missing where required, unknown, malformed or expired",
    "FORBIDDEN": "the caller is authenticated but not allowed to do this",
    # request
    "BAD_USER_INPUT": "an argument is invalid; `field` names it where one is to blame",
    "INTERNAL_SERVER_ERROR": "an unexpected failure, masked; the server logged it",
    "BAD_REQUEST": "the HTTP request is not a GraphQL request (e.g. a JSON body that is not an object); HTTP 400",
    "SERVICE_UNAVAILABLE": "MongoDB is unreachable right now; retry after Retry-After (same idempotency key); "
    "HTTP 503 for application/graphql-response+json",
    "IDEMPOTENCY_CONFLICT": "an idempotency key was reused with a different payload",
    "ALREADY_EXISTS": "the id or unique field is taken",
    "NOT_FOUND": "the thing asked for does not exist (or is not visible to the caller)",
    "INVALID_STATE": "the object's state does not allow this transition",
    "CONFLICT": "an admin edit named a version (expectedVersion) that is no longer current; reload and retry",
    # members and points
    "MEMBER_NOT_FOUND": "no member with that id",
    "INSUFFICIENT_POINTS": "not enough available points",
    "ALREADY_CHECKED_IN": "the member already checked in today",
    "EARN_CAP_REACHED": "the earning rule's cap for the period is reached",
    "BENEFIT_NOT_AVAILABLE": "the member's tier does not include the benefit",
    "QUOTA_EXHAUSTED": "the benefit's quota for the period is used up",
    "ALREADY_DEDUCTED": "points were already deducted for this order",
    "ORDER_ALREADY_RECORDED": "the purchase was already recorded with other data",
    "ORDER_NOT_FOUND": "no recorded purchase with that order id",
    "NOTHING_TO_RESTORE": "nothing of that entry is left to return",
    "DEDUCTION_NOT_FOUND": "no points were deducted at checkout on that order",
    "DEDUCTION_OVER_CAP": "the points held at checkout exceed the cap for the order as really paid; nothing applied",
    "HOLD_EXPIRED": "the hold on these points passed its deadline; they can no longer be spent this way",
    "HOLD_ALREADY_POSTED": "the held points were already spent",
    "HOLD_ALREADY_VOIDED": "the held points were already released",
    "NOT_A_PAID_MEMBER": "the member holds no running paid membership",
    "BIRTHDAY_LOCKED": "a member's recorded birthday is changed only by an admin",
    "TIER_IN_USE": "a removed tier is held by members or required by gifts and no replacement was named",
    # points mall
    "GIFT_NOT_FOUND": "no gift with that id (or not listed for this caller)",
    "GIFT_HAS_REDEMPTIONS": "a redeemed gift is unlisted, not deleted",
    "REDEMPTION_NOT_FOUND": "no redemption with that id for this caller",
    "NOT_LISTED": "the gift is not on sale now",
    "OUT_OF_STOCK": "the gift is out of stock",
    "TIER_TOO_LOW": "the member's tier may not redeem the gift",
    "LIMIT_REACHED": "the gift's redemption limit is reached",
    "PAYMENT_AMOUNT_MISMATCH": "the confirmed amount is not the order's cash part",
    "PAYMENT_REFERENCE_USED": "this payment reference already paid another order",
    "PAYMENT_EXPIRED": "the payment came after the order's payment window; refund it",
    # partners
    "PARTNER_NOT_FOUND": "no partner with that id",
    "PARTNER_INACTIVE": "the partner is suspended",
    "PARTNER_REF_TAKEN": "the partner's customer ref is linked to another member",
    "MEMBER_NOT_LINKED": "the member has no link with this partner",
    "PARTNER_LIMIT_EXCEEDED": "the partner's daily limit would be exceeded",
    "PARTNER_OPERATION_NOT_FOUND": "no operation of this partner with that event id",
    "ALREADY_REVERSED": "the partner operation was already reversed",
    "LINK_CODE_INVALID": "the partner link code is unknown, expired, already used or another partner's",
    "REVERSAL_WINDOW_CLOSED": "the partner's reversal window for that operation has closed",
    "CONVERSION_TOO_SMALL": "the conversion yields no whole point after rate and fee",
    # streams and Kafka
    "STREAM_UNAVAILABLE": "live events are not available on this gateway now",
    "KAFKA_NOT_CONFIGURED": "the operation needs Kafka and none is configured",
}
