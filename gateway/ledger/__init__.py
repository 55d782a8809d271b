"""The points ledger: unit of work, idempotency and posting of immutable entries.

Import its vocabulary from here (``from gateway.ledger import Ledger, LedgerTx, Memo``):
the modules inside may be rearranged, this list stays.
"""

from gateway.ledger.entries import EntryKind, LotState, Memo, Source
from gateway.ledger.transaction import Idempotency, InsufficientPoints, Ledger, LedgerTx, Work

__all__ = [
    "EntryKind",
    "Idempotency",
    "InsufficientPoints",
    "Ledger",
    "LedgerTx",
    "LotState",
    "Memo",
    "Source",
    "Work",
]
