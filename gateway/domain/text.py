"""What text a client may send: pure checks shared by every input.

Refused everywhere (any string argument or variable, see resolvers/input_guard.py):
- lone surrogates (U+D800-U+DFFF): not Unicode text; MongoDB cannot store them;
- NUL and the other C0/C1 control characters, except tab, line feed and carriage return;
- bidirectional overrides, embeddings and isolates (U+202A-U+202E, U+2066-U+2069), which
  make a name display differently from what it is ("Trojan Source").
Names (a member's display name, a gift's name...) are single-line: tab, line feed and
carriage return are refused there too.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
PHONE = re.compile(r"\+?[0-9][0-9 -]{5,19}")
MAX_EMAIL = 254


def unsafe_character(value: str, *, single_line: bool = False) -> str | None:
    """``U+XXXX`` of the first character that text may not contain, or None when it is clean."""
    found = (_UNSAFE_IN_NAME if single_line else _UNSAFE).search(value)
    return None if found is None else f"U+{ord(found.group()):04X}"


def is_email(value: str) -> bool:
    return len(value) <= MAX_EMAIL and EMAIL.fullmatch(value) is not None


def is_phone(value: str) -> bool:
    return PHONE.fullmatch(value) is not None
