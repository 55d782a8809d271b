"""Coupon codes behind virtual gifts (满减券, 免单券, 配送券): the pure rules.

A ``VIRTUAL`` gift is backed by a pool of codes; its stock is the number of codes still
AVAILABLE (not assigned, not used, not void, not expired). What lives here: how codes are
generated (unambiguous alphabet, cryptographically random, a space big enough that neither a
collision nor a guess is plausible), how an imported file is read (trimmed, duplicates and bad
lines reported, never silently merged), how a pool's codes add up, and when a virtual order
may still be cancelled. No I/O: the feature (``gateway.features.coupons``) does the storing.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from gateway.core.clock import as_utc

# 31 symbols: digits and capitals without 0/O, 1/I/L, so a code read aloud or off a receipt is unambiguous.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
PREFIX = re.compile(r"^[A-Z0-9][A-Z0-9-]{0,15}$")
MIN_LENGTH, MAX_LENGTH = 6, 32
MAX_GENERATE = 20_000  # codes per generation request (one transaction); call again for more
MAX_IMPORT = 10_000  # codes per GraphQL import request (the CLI sends a file in batches of this size)
MAX_CODE_CHARS = 64
# The random part must offer this many combinations per code the pool will hold: a collision
# is then about one in a million per draw, and so is a guessed code being real.
SPACE_PER_CODE = 1_000_000
MAX_CANCEL_WINDOW_MINUTES = 60 * 24 * 90
DEFAULT_CANCEL_WINDOW_MINUTES = 60 * 24


class GiftKind(StrEnum):
    PHYSICAL = "PHYSICAL"  # shipped by the warehouse; stock set by hand
    VIRTUAL = "VIRTUAL"  # a coupon: a code from the gift's pool, fulfilled at once; stock = unused codes


VIRTUAL = str(GiftKind.VIRTUAL)
PHYSICAL = str(GiftKind.PHYSICAL)


class CodeStatus(StrEnum):
    AVAILABLE = "AVAILABLE"  # in the pool, counted in the gift's stock
    ASSIGNED = "ASSIGNED"  # given to a member by a redemption
    USED = "USED"  # reported used (markCouponUsed): never goes back to the pool
    EXPIRED = "EXPIRED"  # passed its expiry while still in the pool
    VOID = "VOID"  # withdrawn by the operator (leaked, defective)


class CouponProblem(StrEnum):
    """Why a coupon step is refused; also the error code the client sees."""

    COUPON_USED = "COUPON_USED"
    CANCEL_WINDOW_CLOSED = "CANCEL_WINDOW_CLOSED"


# -- generating ---------------------------------------------------------------------------------


def generation_problem(prefix: str, length: int, count: int, already_in_pool: int) -> tuple[str, str] | None:
    """(field, message) when a generation request cannot be served safely, else None."""
    if prefix and not PREFIX.fullmatch(prefix):
        return "prefix", "prefix must be 1 to 16 of A-Z, 0-9 and '-', starting with a letter or digit"
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        return "length", f"length (the random part) must be {MIN_LENGTH} to {MAX_LENGTH}"
    if not 1 <= count <= MAX_GENERATE:
        return "count", f"count must be 1 to {MAX_GENERATE}"
    if len(prefix) + length > MAX_CODE_CHARS:
        return "length", f"prefix and random part together must be at most {MAX_CODE_CHARS} characters"
    needed = min_length_for(already_in_pool + count)
    if length < needed:
        return "length", f"{already_in_pool + count} codes need a random part of at least {needed} characters"
    return None


def min_length_for(codes: int) -> int:
    """The shortest random part whose space holds ``SPACE_PER_CODE`` combinations per code."""
    needed = math.ceil(math.log(max(codes, 1) * SPACE_PER_CODE, len(ALPHABET)))
    return max(MIN_LENGTH, needed)


def generate_codes(prefix: str, length: int, count: int, *, choice: Callable[[str], str] = secrets.choice) -> list[str]:
    """``count`` distinct codes ``prefix + length random symbols``; ``choice`` is the CSPRNG."""
    codes: dict[str, None] = {}
    while len(codes) < count:
        codes.setdefault(prefix + "".join(choice(ALPHABET) for _ in range(length)))
    return list(codes)


# -- importing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportPlan:
    """An imported list read: the distinct codes in order, and what was wrong with the rest."""

    codes: list[str]
    duplicates_in_input: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (1-based line, problem)


def code_problem(code: str) -> str | None:
    """Why ``code`` (already trimmed) cannot be a coupon code, or None."""
    if not code:
        return "empty"
    if len(code) > MAX_CODE_CHARS:
        return f"longer than {MAX_CODE_CHARS} characters"
    if any(ch.isspace() or not ch.isprintable() for ch in code):
        return "contains spaces or control characters"
    return None


def normalize(raw: str) -> str:
    """A code as stored and matched: surrounding whitespace dropped, case kept (imported codes
    from another system may be case-sensitive; generated codes are upper case)."""
    return raw.strip()


def plan_import(lines: Iterable[str]) -> ImportPlan:
    """Read codes one per line: blank lines are skipped, a repeated code counts once (the
    repeats are reported), and a line that cannot be a code is reported with its number."""
    seen: dict[str, None] = {}
    duplicates = 0
    invalid: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, start=1):
        code = normalize(raw)
        if not code:
            continue
        if problem := code_problem(code):
            invalid.append((number, problem))
        elif code in seen:
            duplicates += 1
        else:
            seen[code] = None
    return ImportPlan(list(seen), duplicates, invalid)


def hint(code: str) -> str:
    """What a list shows instead of a code: its last four characters."""
    return "…" + code[-4:]


# -- the pool -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolCounts:
    """A pool's codes by what they are now. ``total`` = the sum of the others."""

    available: int = 0
    assigned: int = 0
    used: int = 0
    expired: int = 0
    void: int = 0

    @property
    def total(self) -> int:
        return self.available + self.assigned + self.used + self.expired + self.void


def pool_counts(groups: Sequence[tuple[str, bool, int]]) -> PoolCounts:
    """Add up ``(status, past expiry, count)`` groups. A code past its expiry counts as expired
    whether it was still in the pool (awaiting the sweep) or assigned but never used; used and
    void codes stay what they are."""
    totals = dict.fromkeys(("available", "assigned", "used", "expired", "void"), 0)
    for status, past_expiry, count in groups:
        if status in (CodeStatus.USED, CodeStatus.VOID):
            totals[status.lower()] += count
        elif status == CodeStatus.EXPIRED or past_expiry:
            totals["expired"] += count
        else:
            totals[str(status).lower()] += count
    return PoolCounts(**totals)


def expired(expires_at: datetime | None, now: datetime) -> bool:
    """A code is good until (excluding) its expiry instant; no expiry: good for ever."""
    return expires_at is not None and as_utc(expires_at) <= now


# The sort key of a code that never expires: after every dated code (soonest expiry is given first).
FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)


def expiry_sort_key(expires_at: datetime | None) -> datetime:
    return as_utc(expires_at) if expires_at is not None else FAR_FUTURE


def expiry_problem(expires_at: datetime | None, now: datetime) -> str | None:
    """Codes must not be added already expired."""
    if expires_at is not None and as_utc(expires_at) <= now:
        return "expiresAt must be in the future"
    return None


# -- cancelling a virtual order ----------------------------------------------------------------


def cancel_window_problem(minutes: int) -> str | None:
    if not 0 <= minutes <= MAX_CANCEL_WINDOW_MINUTES:
        return f"cancelWindowMinutes must be 0 to {MAX_CANCEL_WINDOW_MINUTES} (90 days)"
    return None


def cancel_deadline(fulfilled_at: datetime, window_minutes: int) -> datetime:
    """Until when a virtual order may be cancelled: the window runs from the moment the code
    was given (the order's fulfilment). A window of 0 means never."""
    return as_utc(fulfilled_at) + timedelta(minutes=window_minutes)


def cancel_refusal(code_statuses: Sequence[str], cancel_until: datetime | None, now: datetime) -> CouponProblem | None:
    """Why a fulfilled virtual order cannot be cancelled now, or None.

    A used code is value the member already had: the order stays (COUPON_USED), whatever the
    window. Otherwise the window decides; it closes at ``cancel_until`` (excluded).
    """
    if any(status == CodeStatus.USED for status in code_statuses):
        return CouponProblem.COUPON_USED
    if cancel_until is None or now >= as_utc(cancel_until):
        return CouponProblem.CANCEL_WINDOW_CLOSED
    return None


def status_after_return(expires_at: datetime | None, now: datetime) -> CodeStatus:
    """Where a code of a cancelled order goes: back to the pool, or EXPIRED if its time is up."""
    return CodeStatus.EXPIRED if expired(expires_at, now) else CodeStatus.AVAILABLE
