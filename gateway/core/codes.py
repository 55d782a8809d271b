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
    # partners
    "PARTNER_NOT_FOUND": "no partner with that id",
    "PARTNER_INACTIVE": "the partner is suspended",
    "PARTNER_REF_TAKEN": "the partner's customer ref is linked to another member",
    "MEMBER_NOT_LINKED": "the member has no link with this partner",
    "PARTNER_LIMIT_EXCEEDED": "the partner's daily limit would be exceeded",
    "PARTNER_OPERATION_NOT_FOUND": "no operation of this partner with that event id",
    "ALREADY_REVERSED": "the partner operation was already reversed",
    "REVERSAL_WINDOW_CLOSED": "the partner's reversal window for that operation has closed",
    "CONVERSION_TOO_SMALL": "the conversion yields no whole point after rate and fee",
    # request limits and abuse protection (docs/hardening.md)
    "GRAPHQL_PARSE_FAILED": "the document does not parse",
    "GRAPHQL_VALIDATION_FAILED": "the document is not valid against the schema",
    "TOO_MANY_TOKENS": "the document has more lexical tokens than LOYALTY_MAX_TOKENS",
    "QUERY_TOO_DEEP": "fields nest deeper than LOYALTY_MAX_QUERY_DEPTH",
    "QUERY_TOO_COMPLEX": "the operation may produce more objects than LOYALTY_MAX_QUERY_COST",
    "TOO_MANY_ALIASES": "more aliases than LOYALTY_MAX_ALIASES",
    "TOO_MANY_ROOT_FIELDS": "more top-level fields than LOYALTY_MAX_ROOT_FIELDS",
    "TOO_MANY_DIRECTIVES": "more directives than LOYALTY_MAX_DIRECTIVES",
    "PAGE_SIZE_TOO_LARGE": "a connection's first is over LOYALTY_MAX_PAGE_SIZE",
    "PAYLOAD_TOO_LARGE": "the HTTP body is over LOYALTY_MAX_BODY_BYTES (status 413)",
    "VARIABLES_TOO_LARGE": "the variables are over LOYALTY_MAX_VARIABLES_BYTES",
    "INTROSPECTION_DISABLED": "introspection (and _service) is off on this gateway",
    "RATE_LIMITED": "too many requests or failed credentials in the window (status 429, Retry-After)",
    "TOO_MANY_SUBSCRIPTIONS": "over the live subscriptions allowed per connection or per member",
    "PERSISTED_QUERY_NOT_FOUND": "no operation registered under that sha256Hash: send the query with it",
    "PERSISTED_QUERY_NOT_IN_LIST": "this caller may run allow-listed (registered) operations only",
    "PERSISTED_QUERY_HASH_MISMATCH": "the sha256Hash is not the hash of the query sent",
    "PERSISTED_QUERY_INVALID": "extensions.persistedQuery is not version 1 with a 64-hex sha256Hash",
    # streams and Kafka
    "STREAM_UNAVAILABLE": "live events are not available on this gateway now",
    "KAFKA_NOT_CONFIGURED": "the operation needs Kafka and none is configured",
}
