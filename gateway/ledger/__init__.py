"""The points ledger: unit of work, idempotency and posting of immutable entries."""
