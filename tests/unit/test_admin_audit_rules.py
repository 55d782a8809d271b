"""The admin audit log's hash chain: any edited, removed or reordered entry is found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.admin_audit import GENESIS, AuditAction, AuditEntry, chain_hash, verify_chain

START = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


def chain(n: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    prev = GENESIS
    for seq in range(1, n + 1):
        body = AuditEntry(
            action=AuditAction.POINTS_GRANT,
            actor_role="admin",
            actor="ops-1",
            target_kind="member",
            target_id=f"m{seq}",
            at=START + timedelta(seconds=seq),
            details={"points": seq * 10, "when": START},
        ).body()
        digest = chain_hash(prev, seq, body)
        entries.append({"_id": seq, "seq": seq, **body, "prevHash": prev, "hash": digest})
        prev = digest
    return entries


def head_of(entries: list[dict[str, Any]]) -> tuple[int, str]:
    return (entries[-1]["seq"], entries[-1]["hash"]) if entries else (0, GENESIS)


def test_an_untouched_chain_verifies() -> None:
    entries = chain(5)
    assert verify_chain(entries, head_of(entries)) is None


def test_stored_times_lose_microseconds_but_the_hash_holds() -> None:
    entries = chain(2)
    for entry in entries:  # MongoDB keeps milliseconds and gives back naive UTC
        entry["at"] = entry["at"].replace(microsecond=entry["at"].microsecond // 1000 * 1000, tzinfo=None)
    assert verify_chain(entries, head_of(entries)) is None


def test_details_are_stored_as_plain_json() -> None:
    [entry] = chain(1)
    assert entry["details"] == {"points": 10, "when": START.isoformat()}


@given(st.integers(min_value=1, max_value=8), st.data())
def test_an_edited_entry_breaks_the_chain_at_that_entry(n: int, data: st.DataObject) -> None:
    entries = chain(n)
    victim = data.draw(st.integers(min_value=0, max_value=n - 1))
    field = data.draw(st.sampled_from(["actor", "targetId", "details", "action"]))
    entries[victim][field] = {"points": 1} if field == "details" else "tampered"
    assert verify_chain(entries, head_of(chain(n))) == victim + 1


@given(st.integers(min_value=2, max_value=8), st.data())
def test_a_removed_entry_breaks_the_chain(n: int, data: st.DataObject) -> None:
    full = chain(n)
    victim = data.draw(st.integers(min_value=0, max_value=n - 1))
    entries = full[:victim] + full[victim + 1 :]
    assert verify_chain(entries, head_of(full)) == victim + 1


def test_removing_the_newest_entry_is_found_through_the_head() -> None:
    full = chain(3)
    assert verify_chain(full[:2], head_of(full)) == 3
