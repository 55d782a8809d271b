"""The points ledger: unit of work, idempotency and posting of immutable entries.

- ``entries``: what an entry says (``EntryKind``, ``LotState``, ``Source``, ``Memo``);
- ``idempotency``: at most once per client key (``Idempotency``);
- ``unit_of_work``: one transaction per business action (``Ledger.transact``, ``Work``);
- ``posting``: how a transaction moves points through lots, holds and entries (``LedgerTx``).

Its queries are repositories in gateway/store/ (``ledger``, ``lots``, ``holds``, ``idempotency``).
Import its vocabulary from here (``from gateway.ledger import Ledger, LedgerTx, Memo``).
"""

from gateway.ledger.entries import EntryKind, LotState, Memo, Source
from gateway.ledger.idempotency import Idempotency
from gateway.ledger.posting import InsufficientPoints, LedgerTx
from gateway.ledger.unit_of_work import Ledger, Work

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
