"""Customer service's view of a member's ledger (issue 14 §1): the filter, as a pure value.

"Why did my points drop on the 3rd?", "did order 8812 earn anything?": a support agent narrows a
member's entries by kind, by source (type, id, partner) and by time, newest first. Every field
narrows (AND); a field left out does not filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.domain.member_search import InvalidFilter
from gateway.domain.text import unsafe_character

MAX_KINDS = 30
_SOURCE_TYPE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")


@dataclass(frozen=True)
class LedgerFilter:
    kinds: tuple[str, ...] = ()
    source_type: str | None = None
    source_id: str | None = None
    partner_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    @classmethod
    def parse(
        cls,
        *,
        kinds: Iterable[str] | None = None,
        source_type: str | None = None,
        source_id: str | None = None,
        partner_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> LedgerFilter:
        """Validate raw input; ``InvalidFilter`` names the first bad field."""
        unique = tuple(dict.fromkeys(kinds or ()))
        if len(unique) > MAX_KINDS:
            raise InvalidFilter("kinds", f"at most {MAX_KINDS} kinds")
        if source_type is not None and not _SOURCE_TYPE.fullmatch(source_type):
            raise InvalidFilter("sourceType", "sourceType is upper-case letters, digits and _ (ORDER, PARTNER...)")
        for name, value in (("sourceId", source_id), ("partnerId", partner_id)):
            if value is not None and (not 1 <= len(value) <= 200 or unsafe_character(value, single_line=True)):
                raise InvalidFilter(name, f"{name} must be 1 to 200 characters on one line")
        for name, instant in (("since", since), ("until", until)):
            if instant is not None and instant.tzinfo is None:
                raise InvalidFilter(name, f"{name} needs a time zone")
        if since is not None and until is not None and until <= since:
            raise InvalidFilter("until", "until must be after since")
        return cls(unique, source_type, source_id, partner_id, since, until)
