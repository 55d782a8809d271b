"""Use cases: each module orchestrates the store, the ledger and the pure domain rules for one job."""
