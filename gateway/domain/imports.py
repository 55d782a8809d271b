"""Rules for operator CSV imports: what a row must look like, what it means, how it is keyed.

Pure functions over text. A file is read into ``ParsedRow``s: each one either a typed row or the
reasons it is malformed (with its line number), so one bad row never stops the good ones. The
services then apply the typed rows through the same validation as the GraphQL API.

Formats (UTF-8, a header line, comma separated; a UTF-8 BOM from spreadsheet exports is accepted):

- members: ``id,display_name[,email,phone,birthday,referrer_id]`` (birthday ``YYYY-MM-DD``)
- gifts: ``id,name,category,cost_price,points,stock[,cash,description,image_url,min_tier,
  per_member,period,per_order,listed,list_from,list_until]`` (money in fen, times ISO 8601)
- grants: ``member_id,points,reason[,key]`` (negative points adjust; ``key`` makes a row unique)

Idempotency: members and gifts are keyed by their ``id``. A grant row is keyed by its ``key``
column when given, otherwise by its content and how many identical rows came before it in the
file, so fixing a bad row and running the file again never grants a good row twice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from gateway.domain.calendar import Period

T = TypeVar("T")
ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_LINE = 10_000


class ImportKind(StrEnum):
    MEMBERS = "members"
    GIFTS = "gifts"
    GRANTS = "grants"


class RowError(ValueError):
    """A malformed field: ``column`` names it (empty for the row as a whole)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"{column}: {message}" if column else message)
        self.column = column


@dataclass(frozen=True)
class MemberRow:
    id: str
    display_name: str
    email: str | None = None
    phone: str | None = None
    birthday: date | None = None
    referrer_id: str | None = None


@dataclass(frozen=True)
class GiftRow:
    id: str
    name: str
    category: str
    cost_price: int
    points: int
    stock: int
    cash: int = 0
    description: str = ""
    image_url: str | None = None
    min_tier: str | None = None
    per_member: int | None = None
    period: str | None = None
    per_order: int | None = None
    listed: bool = True
    list_from: datetime | None = None
    list_until: datetime | None = None


@dataclass(frozen=True)
class GrantRow:
    member_id: str
    points: int
    reason: str
    key: str


@dataclass(frozen=True)
class ParsedRow(Generic[T]):
    """One data line of a file: ``row`` when it parsed, else ``errors``; ``raw`` as read."""

    line: int
    raw: dict[str, str]
    row: T | None = None
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.row is not None


@dataclass(frozen=True)
class Columns:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return self.required + self.optional


COLUMNS: dict[ImportKind, Columns] = {
    ImportKind.MEMBERS: Columns(("id", "display_name"), ("email", "phone", "birthday", "referrer_id")),
    ImportKind.GIFTS: Columns(
        ("id", "name", "category", "cost_price", "points", "stock"),
        (
            "cash",
            "description",
            "image_url",
            "min_tier",
            "per_member",
            "period",
            "per_order",
            "listed",
            "list_from",
            "list_until",
        ),
    ),
    ImportKind.GRANTS: Columns(("member_id", "points", "reason"), ("key",)),
}


class HeaderError(ValueError):
    """The file as a whole cannot be read (no header, missing or unknown columns)."""


def check_header(kind: ImportKind, header: list[str] | None) -> list[str]:
    columns = COLUMNS[kind]
    if not header:
        raise HeaderError(f"the file is empty: a {kind} file starts with the header {','.join(columns.required)}")
    names = [h.strip().lower() for h in header]
    missing = [c for c in columns.required if c not in names]
    unknown = [c for c in names if c not in columns.all]
    duplicated = sorted(c for c, n in Counter(names).items() if n > 1)
    problems = []
    if missing:
        problems.append(f"missing columns: {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown columns: {', '.join(unknown)} (known: {', '.join(columns.all)})")
    if duplicated:
        problems.append(f"repeated columns: {', '.join(duplicated)}")
    if problems:
        raise HeaderError("; ".join(problems))
    return names


# -- field readers ---------------------------------------------------------------------------


def _text(raw: dict[str, str], column: str) -> str | None:
    value = (raw.get(column) or "").strip()
    return value or None


def _required(raw: dict[str, str], column: str) -> str:
    value = _text(raw, column)
    if value is None:
        raise RowError(column, "is required")
    return value


def _int(raw: dict[str, str], column: str, *, required: bool = False, default: int | None = None) -> int | None:
    value = _required(raw, column) if required else _text(raw, column)
    if value is None:
        return default
    if not re.fullmatch(r"[+-]?\d{1,15}", value):
        raise RowError(column, f"{value!r} is not a whole number")
    return int(value)


def _id(raw: dict[str, str], column: str, *, required: bool = True) -> str | None:
    value = _required(raw, column) if required else _text(raw, column)
    if value is not None and not ID.fullmatch(value):
        raise RowError(column, f"{value!r}: use 1 to 64 letters, digits or _.:-")
    return value


def _date(raw: dict[str, str], column: str) -> date | None:
    value = _text(raw, column)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RowError(column, f"{value!r} is not a date (YYYY-MM-DD)") from None


def _instant(raw: dict[str, str], column: str) -> datetime | None:
    value = _text(raw, column)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowError(column, f"{value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise RowError(column, f"{value!r} needs a UTC offset (for example 2026-03-01T00:00:00+08:00)")
    return parsed.astimezone(UTC)


def _bool(raw: dict[str, str], column: str, default: bool) -> bool:
    value = _text(raw, column)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("true", "yes", "1", "y"):
        return True
    if lowered in ("false", "no", "0", "n"):
        return False
    raise RowError(column, f"{value!r} is not true or false")


def _collect(readers: dict[str, Callable[[], Any]]) -> tuple[dict[str, Any], list[str]]:
    """Run every field reader, collecting all errors of the row rather than the first."""
    values: dict[str, Any] = {}
    errors: list[str] = []
    for name, read in readers.items():
        try:
            values[name] = read()
        except RowError as exc:
            errors.append(str(exc))
    return values, errors


# -- rows ------------------------------------------------------------------------------------


def member_row(raw: dict[str, str]) -> MemberRow:
    values, errors = _collect(
        {
            "id": lambda: _id(raw, "id"),
            "display_name": lambda: _required(raw, "display_name"),
            "email": lambda: _text(raw, "email"),
            "phone": lambda: _text(raw, "phone"),
            "birthday": lambda: _date(raw, "birthday"),
            "referrer_id": lambda: _id(raw, "referrer_id", required=False),
        }
    )
    if errors:
        raise RowError("", "; ".join(errors))
    return MemberRow(**values)


def gift_row(raw: dict[str, str]) -> GiftRow:
    values, errors = _collect(
        {
            "id": lambda: _id(raw, "id"),
            "name": lambda: _required(raw, "name"),
            "category": lambda: _required(raw, "category"),
            "cost_price": lambda: _int(raw, "cost_price", required=True),
            "points": lambda: _int(raw, "points", required=True),
            "stock": lambda: _int(raw, "stock", required=True),
            "cash": lambda: _int(raw, "cash", default=0),
            "description": lambda: _text(raw, "description") or "",
            "image_url": lambda: _text(raw, "image_url"),
            "min_tier": lambda: _text(raw, "min_tier"),
            "per_member": lambda: _int(raw, "per_member"),
            "period": lambda: (_text(raw, "period") or "").upper() or None,
            "per_order": lambda: _int(raw, "per_order"),
            "listed": lambda: _bool(raw, "listed", True),
            "list_from": lambda: _instant(raw, "list_from"),
            "list_until": lambda: _instant(raw, "list_until"),
        }
    )
    if not errors and values["period"] is not None and values["period"] not in set(Period):
        errors.append(f"period: {values['period']!r} is not one of {', '.join(Period)}")
    if errors:
        raise RowError("", "; ".join(errors))
    return GiftRow(**values)


def grant_content_key(member_id: str, points: int, reason: str, occurrence: int) -> str:
    digest = hashlib.sha256(f"{member_id}\x1f{points}\x1f{reason}".encode()).hexdigest()[:24]
    return f"{digest}#{occurrence}"


def _grant_fields(raw: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    return _collect(
        {
            "member_id": lambda: _id(raw, "member_id"),
            "points": lambda: _int(raw, "points", required=True),
            "reason": lambda: _required(raw, "reason"),
            "key": lambda: _text(raw, "key"),
        }
    )


def grant_rows(raws: Iterable[dict[str, str]]) -> Iterator[GrantRow | RowError]:
    """Typed grant rows in file order, each with its stable key (see the module docstring)."""
    seen: Counter[tuple[str, int, str]] = Counter()
    for raw in raws:
        values, errors = _grant_fields(raw)
        if not errors and values["points"] == 0:
            errors.append("points: must not be zero (positive grants, negative adjusts)")
        if not errors and values["key"] is not None and len(values["key"]) > 100:
            errors.append("key: at most 100 characters")
        if errors:
            yield RowError("", "; ".join(errors))
            continue
        content = (values["member_id"], values["points"], values["reason"])
        seen[content] += 1
        key = values["key"] or grant_content_key(*content, occurrence=seen[content])
        yield GrantRow(member_id=values["member_id"], points=values["points"], reason=values["reason"], key=key)


def parse(kind: ImportKind, text: str) -> list[ParsedRow[Any]]:
    """Every data line of a CSV file as a ParsedRow; HeaderError if the header is wrong.

    Ids repeated within one file are errors on their later lines (an id names one member or gift).
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header = check_header(kind, next(reader, None))
    raws: list[tuple[int, dict[str, str], str | None]] = []
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue  # blank lines are not rows
        shape = None
        if len(record) != len(header):
            shape = f"has {len(record)} fields, the header has {len(header)}"
        raws.append((line, dict(zip(header, record, strict=False)), shape))
    shaped = [raw for _, raw, shape in raws if shape is None]
    if kind is ImportKind.GRANTS:
        parsed: list[Any] = list(grant_rows(shaped))
    else:
        read = member_row if kind is ImportKind.MEMBERS else gift_row
        parsed = []
        for raw in shaped:
            try:
                parsed.append(read(raw))
            except RowError as exc:
                parsed.append(exc)
    values = iter(parsed)
    typed = [next(values) if shape is None else None for _, _, shape in raws]
    rows: list[ParsedRow[Any]] = []
    ids: dict[str, int] = {}
    for (line, raw, shape), value in zip(raws, typed, strict=True):
        if shape is not None or value is None:
            rows.append(ParsedRow(line, raw, errors=(shape or "malformed",)))
        elif isinstance(value, RowError):
            rows.append(ParsedRow(line, raw, errors=(str(value),)))
        elif kind is not ImportKind.GRANTS and value.id in ids:
            rows.append(ParsedRow(line, raw, errors=(f"id: {value.id!r} already appears on line {ids[value.id]}",)))
        else:
            if kind is not ImportKind.GRANTS:
                ids[value.id] = line
            rows.append(ParsedRow(line, raw, row=value))
    return rows


def fingerprint(text: str) -> str:
    """Identifies one version of a file: a resumed run only skips rows of the same content."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Tally:
    """What a run did, by outcome; the CLI prints it and stores it with the checkpoint."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: str) -> None:
        self.counts[outcome] += 1

    def summary(self) -> str:
        return ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.counts.items())) or "no rows"
