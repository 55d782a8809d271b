"""Backup and verified restore of the gateway's database, checked by the ledger audit afterwards.

See ``store.backup`` for the format. A restore verifies the files before writing, counts the
documents after writing, and then runs the same reconciliation as ``loyalty-gateway audit``:
a restore is only reported clean when every balance still matches its ledger and lots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.features.audit import Mismatch, audit_all
from gateway.store.backup import BackupError, CollectionDump, Progress, collection_counts, dump, load, verify
from gateway.store.mongo import Database

__all__ = ["BackupError", "RestoreReport", "backup", "collection_counts", "restore", "verify"]


@dataclass(frozen=True)
class RestoreReport:
    counts: dict[str, int]
    mismatches: list[Mismatch]


async def backup(
    db: Database, directory: Path, *, now: datetime, version: str, progress: Progress | None = None
) -> list[CollectionDump]:
    return await dump(db, directory, now=now, version=version, progress=progress)


async def restore(db: Database, directory: Path, *, replace: bool, progress: Progress | None = None) -> RestoreReport:
    counts = await load(db, directory, replace=replace, progress=progress)
    return RestoreReport(counts=counts, mismatches=await audit_all(db))
