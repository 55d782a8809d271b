"""Reconciliation: balances must equal the ledger, and the lots and holds must back the balances."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from gateway.core.clock import as_utc
from gateway.domain.ledger_rules import BALANCE_FIELDS, apply_delta, zero_delta
from gateway.store import holds as holds_store
from gateway.store import ledger as ledger_store
from gateway.store import lots as lots_store
from gateway.store.mongo import Database, Document


@dataclass(frozen=True)
class Mismatch:
    member_id: str
    problem: str

    def __str__(self) -> str:
        return f"{self.member_id}: {self.problem}"


async def audit_member(db: Database, member: Document) -> list[Mismatch]:
    member_id = member["_id"]
    problems: list[str] = []
    summed = zero_delta()
    seqs: list[int] = []
    async for entry in ledger_store.deltas_of(db, member_id):
        summed = apply_delta(summed, entry["delta"])
        seqs.append(entry["seq"])
    balances = member["balances"]
    for name in BALANCE_FIELDS:
        if balances.get(name, 0) != summed[name]:
            problems.append(f"{name} is {balances.get(name, 0)} but the ledger sums to {summed[name]}")
    if seqs != list(range(1, len(seqs) + 1)) or member.get("ledgerSeq", 0) != len(seqs):
        problems.append(f"ledger sequence has gaps or duplicates ({len(seqs)} entries, seq {member.get('ledgerSeq')})")
    held = {"PENDING": 0, "AVAILABLE": 0}
    due_bound = member.get("nextDueAt")
    async for lot in lots_store.of_member(db, member_id):
        if lot["remaining"] < 0:
            problems.append(f"lot {lot['_id']} has negative remaining {lot['remaining']}")
        held[lot["state"]] += lot["remaining"]
        due = lot_due_at(lot)
        if due_bound is not None and due is not None and as_utc(due) < as_utc(due_bound):
            problems.append(f"nextDueAt {due_bound} is later than lot {lot['_id']} falls due ({due})")
    on_hold = 0
    async for hold in holds_store.open_of(db, member_id):
        on_hold += hold["points"]
        if sum(take["points"] for take in hold["lots"]) != hold["points"]:
            problems.append(f"hold {hold['_id']} holds {hold['points']} points but took a different sum from lots")
    if on_hold != balances.get("held", 0):
        problems.append(f"held is {balances.get('held', 0)} but open holds hold {on_hold}")
    if held["PENDING"] != balances.get("pending", 0):
        problems.append(f"pending is {balances.get('pending', 0)} but pending lots hold {held['PENDING']}")
    expected_available = held["AVAILABLE"] - member.get("debt", 0)
    if expected_available != balances.get("available", 0):
        problems.append(f"available is {balances.get('available', 0)} but lots less debt hold {expected_available}")
    return [Mismatch(member_id, p) for p in problems]


def lot_due_at(lot: Document) -> datetime | None:
    """When a lot next needs settling: its release while pending, its expiry while it holds points."""
    if lot["state"] == "PENDING":
        instants = [i for i in (lot.get("availableAt"), lot.get("expiresAt")) if i is not None]
        return min(instants, key=as_utc) if instants else None
    return lot.get("expiresAt") if lot["remaining"] > 0 else None


async def audit(db: Database) -> AsyncIterator[Mismatch]:
    async for member in ledger_store.ledger_states(db):
        for mismatch in await audit_member(db, member):
            yield mismatch


async def audit_all(db: Database) -> list[Mismatch]:
    return [m async for m in audit(db)]
