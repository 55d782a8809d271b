"""Points balances as clients see them."""

from __future__ import annotations

import strawberry

from gateway.store.mongo import Document


@strawberry.type(description="Points balances, derived from the ledger.")
class PointBalances:
    available: int
    pending: int = strawberry.field(description="Earned but inside the return window; not spendable.")
    lifetime_earned: int
    spent: int
    expired: int
    held: int = strawberry.field(
        description="On hold: deducted at an unfinished checkout or reserved by an unpaid redemption; not spendable."
    )

    @classmethod
    def of(cls, balances: Document) -> PointBalances:
        return cls(
            available=balances["available"],
            pending=balances["pending"],
            lifetime_earned=balances["lifetimeEarned"],
            spent=balances["spent"],
            expired=balances["expired"],
            held=balances.get("held", 0),
        )
