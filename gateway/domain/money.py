"""Money at the gateway's edge: amounts are integers of fen (¥1 = 100 fen), with an upper bound.

``MAX_ORDER_FEN`` (¥1,000,000) bounds every amount a client sends: a purchase and its
refunds, an order amount at checkout, a gift's cash and cost price, a partner purchase.
Anything larger is a typo or an attack (GraphQL's Int would otherwise let 2^31 - 1 fen,
¥21 million, through), and it is refused with BAD_USER_INPUT naming the field. The
bounds are documented in docs/errors.md ("Limits on input").
"""

from __future__ import annotations

MAX_ORDER_FEN = 100_000_000


def amount_problem(value: int, *, allow_zero: bool = False) -> str | None:
    """Why ``value`` is not an acceptable amount of fen, or None."""
    low = 0 if allow_zero else 1
    if not low <= value <= MAX_ORDER_FEN:
        return f"must be from {low} to {MAX_ORDER_FEN:,} fen (¥{MAX_ORDER_FEN // 100:,})"
    return None
