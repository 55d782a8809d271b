"""Finding members (issue 14 §1): the filter a back office searches with, as a pure value.

``MemberFilter`` is what customer service types into the member search and what a segment grant
(§3) targets: one validated value, turned into one MongoDB query by ``gateway.store.members``.
Every field narrows the result (AND); a field left out does not filter. ``MemberFilter.parse``
validates raw input and normalizes it, so two spellings of one question are one filter.

How each criterion is matched, and what the member document keeps for it (see ``search_keys``):

- **name**: a case-insensitive *substring* of the display name (NFKC, case-folded, spaces
  collapsed). The member document keeps every suffix of the normalized name, so a substring
  search is an index range scan for the query as a prefix of some suffix: a surname (王), a
  given name (小明) or a part of a Latin name all find the member without scanning the collection.
- **phone**: digits only, at least 4; matches the whole number or its last digits (customer
  service asks for "the last four"), whatever the spaces, dashes or country prefix. The member
  document keeps the digits reversed, so "ends with" is an index prefix scan too.
- **email**: case-insensitive prefix of the address (at least 3 characters): a whole address finds
  that member (and, in theory, a longer address it begins, such as ``a@b.c`` for ``a@b.cn``).
- **tiers**: any of the tier codes.
- **segments**: any of the RFM segments (seed 003) of the members' last segment snapshot
  (``gateway.features.member_segments``): the analytics' own RFM scoring, written on each member.
- **joined**: ``registered_at`` in [joined_from, joined_to).
- **spend**: lifetime spend in fen (net of refunds, maintained with each purchase) in
  [spend_min, spend_max], both inclusive.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from gateway.domain.analytics import Segment
from gateway.domain.text import unsafe_character

MAX_NAME_QUERY = 80
MIN_PHONE_DIGITS = 4
MIN_EMAIL_PREFIX = 3
MAX_LIST = 20  # tiers or segments in one filter
MAX_SPEND = 10**15  # fen: far beyond any member, small enough for MongoDB's int64
_SPACES = re.compile(r"\s+")
_NON_DIGITS = re.compile(r"[^0-9]")


class InvalidFilter(ValueError):
    """A filter field is wrong; ``field`` names it (as the API spells it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class MemberOrder(StrEnum):
    """How a member list is sorted; the cursor carries the position in that order."""

    NEWEST = "NEWEST"  # registered most recently first
    HIGHEST_SPEND = "HIGHEST_SPEND"  # largest lifetime spend first


def normalize_name(value: str) -> str:
    """The form names are compared in: NFKC (full-width → ASCII), case-folded, spaces collapsed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", value).casefold()).strip()


def phone_digits(value: str) -> str:
    """A phone number's digits (NFKC first, so full-width digits count)."""
    return _NON_DIGITS.sub("", unicodedata.normalize("NFKC", value))


def name_suffixes(name: str) -> list[str]:
    """Every suffix of the normalized name that starts at a non-space, longest first (deduplicated).

    A substring of the name is a prefix of one of these, so an index on them answers a
    "contains" search with a range scan.
    """
    normalized = normalize_name(name)
    seen: dict[str, None] = {}
    for start in range(len(normalized)):
        if not normalized[start].isspace():
            seen.setdefault(normalized[start:], None)
    return list(seen)


def search_keys(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The derived search fields for the profile fields present in ``fields`` (a new member
    document, or a profile update): ``search.name`` (suffixes) and ``search.phone`` (digits,
    reversed). A cleared phone clears its key."""
    keys: dict[str, Any] = {}
    if "displayName" in fields and fields["displayName"] is not None:
        keys["search.name"] = name_suffixes(fields["displayName"])
    if "phone" in fields:
        phone = fields["phone"]
        digits = phone_digits(phone) if phone else ""
        keys["search.phone"] = digits[::-1] if digits else None
    return keys


def nest(dotted: Mapping[str, Any]) -> dict[str, Any]:
    """``{"search.name": x}`` as ``{"search": {"name": x}}`` (for a document being inserted)."""
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        head, _, rest = key.partition(".")
        if rest:
            out.setdefault(head, {})[rest] = value
        else:
            out[head] = value
    return out


@dataclass(frozen=True)
class MemberFilter:
    """A validated, normalized member filter. Build it with ``MemberFilter.parse``."""

    name: str | None = None  # normalized substring
    phone: str | None = None  # digits
    email: str | None = None  # lower-case prefix
    tiers: tuple[str, ...] = ()
    segments: tuple[Segment, ...] = ()
    joined_from: datetime | None = None
    joined_to: datetime | None = None
    spend_min: int | None = None
    spend_max: int | None = None

    @classmethod
    def parse(
        cls,
        *,
        name: str | None = None,
        phone: str | None = None,
        email: str | None = None,
        tiers: Iterable[str] | None = None,
        segments: Iterable[Segment | str] | None = None,
        joined_from: datetime | None = None,
        joined_to: datetime | None = None,
        spend_min: int | None = None,
        spend_max: int | None = None,
    ) -> MemberFilter:
        """Validate and normalize raw input; ``InvalidFilter`` names the first bad field."""
        return cls(
            name=_name(name),
            phone=_phone(phone),
            email=_email(email),
            tiers=_codes(tiers),
            segments=_segments(segments),
            joined_from=_instant("joinedFrom", joined_from),
            joined_to=_instant("joinedTo", joined_to),
            spend_min=_spend("spendMin", spend_min),
            spend_max=_spend("spendMax", spend_max),
        )._checked()

    def _checked(self) -> MemberFilter:
        if self.joined_from and self.joined_to and self.joined_to <= self.joined_from:
            raise InvalidFilter("joinedTo", "joinedTo must be after joinedFrom")
        if self.spend_min is not None and self.spend_max is not None and self.spend_max < self.spend_min:
            raise InvalidFilter("spendMax", "spendMax must not be below spendMin")
        return self

    @property
    def is_empty(self) -> bool:
        return self == MemberFilter()

    def describe(self) -> dict[str, Any]:
        """The filter as plain JSON-able values (for an audit entry or a job's record)."""
        out: dict[str, Any] = {}
        for key, value in (
            ("name", self.name),
            ("phone", self.phone),
            ("email", self.email),
            ("tiers", list(self.tiers) or None),
            ("segments", [str(s) for s in self.segments] or None),
            ("joinedFrom", self.joined_from.isoformat() if self.joined_from else None),
            ("joinedTo", self.joined_to.isoformat() if self.joined_to else None),
            ("spendMin", self.spend_min),
            ("spendMax", self.spend_max),
        ):
            if value is not None:
                out[key] = value
        return out


def _name(value: str | None) -> str | None:
    if value is None:
        return None
    if bad := unsafe_character(value, single_line=True):
        raise InvalidFilter("name", f"name must be one line without control characters ({bad})")
    normalized = normalize_name(value)
    if not 1 <= len(normalized) <= MAX_NAME_QUERY:
        raise InvalidFilter("name", f"name must be 1 to {MAX_NAME_QUERY} characters")
    return normalized


def _phone(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) > 32 or unsafe_character(value, single_line=True):
        raise InvalidFilter("phone", "phone must be a number (digits, spaces, dashes, a leading +)")
    digits = phone_digits(value)
    if len(digits) < MIN_PHONE_DIGITS:
        raise InvalidFilter("phone", f"phone must have at least {MIN_PHONE_DIGITS} digits (the last digits match)")
    return digits


def _email(value: str | None) -> str | None:
    if value is None:
        return None
    cleaned = value.strip().lower()
    if len(cleaned) > 254 or unsafe_character(cleaned, single_line=True) or any(c.isspace() for c in cleaned):
        raise InvalidFilter("email", "email must be an address or the start of one, without spaces")
    if len(cleaned) < MIN_EMAIL_PREFIX:
        raise InvalidFilter("email", f"email must be at least {MIN_EMAIL_PREFIX} characters")
    return cleaned


def _codes(values: Iterable[str] | None) -> tuple[str, ...]:
    codes = tuple(dict.fromkeys(values or ()))
    if len(codes) > MAX_LIST:
        raise InvalidFilter("tiers", f"at most {MAX_LIST} tiers")
    for code in codes:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,31}", code):
            raise InvalidFilter("tiers", "a tier code is upper-case letters, digits and _")
    return codes


def _segments(values: Iterable[Segment | str] | None) -> tuple[Segment, ...]:
    try:
        return tuple(dict.fromkeys(Segment(v) for v in (values or ())))
    except ValueError:
        raise InvalidFilter("segments", "unknown RFM segment") from None


def _instant(field: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidFilter(field, f"{field} needs a time zone")
    return value


def _spend(field: str, value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_SPEND:
        raise InvalidFilter(field, f"{field} must be 0 to {MAX_SPEND} fen")
    return value


# --- cursors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """Where a page ended in a ``MemberOrder``: the last member's sort value and id."""

    order: MemberOrder
    value: datetime | int
    member_id: str

    def encode(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime) else str(self.value)
        return f"{self.order.value}|{value}|{self.member_id}"

    @classmethod
    def decode(cls, raw: str, order: MemberOrder) -> Position:
        """A cursor this order handed out; ``ValueError`` for anything else (another order's too)."""
        parts = raw.split("|", 2)
        if len(parts) != 3 or parts[0] != order.value or not parts[2]:
            raise ValueError("not a cursor of this member list")
        value: datetime | int
        if order is MemberOrder.NEWEST:
            value = datetime.fromisoformat(parts[1])
            if value.tzinfo is None:
                raise ValueError("not a cursor of this member list")
        else:
            if not re.fullmatch(r"-?[0-9]{1,18}", parts[1]):
                raise ValueError("not a cursor of this member list")
            value = int(parts[1])
        return cls(order, value, parts[2])


SORT_FIELD = {MemberOrder.NEWEST: "registeredAt", MemberOrder.HIGHEST_SPEND: "lifetimeSpend"}


def position_of(order: MemberOrder, member: Mapping[str, Any]) -> Position:
    """The position of ``member`` (a stored document) in ``order``."""
    if order is MemberOrder.HIGHEST_SPEND:
        return Position(order, int(member.get("lifetimeSpend") or 0), member["_id"])
    registered: datetime = member["registeredAt"]
    return Position(order, registered, member["_id"])


# --- RFM segment snapshot -----------------------------------------------------------------------

DEFAULT_SEGMENT_WINDOW_DAYS = 365


def segment_window(today: date, days: int) -> tuple[date, date]:
    """The local dates a segment snapshot scores: the ``days`` days ending today (inclusive)."""
    if not 1 <= days <= 3660:
        raise ValueError("the segment window is 1 to 3660 days")
    return today - timedelta(days=days - 1), today
