"""Partner links proven by both sides: the member's one-time link code and the partner's customer ref.

Pure rules: a code's alphabet and shape, how a typed code is normalized, and the hash
stored in its place. Codes are 10 characters of Crockford's base32 (50 bits), shown
as ``XXXXX-XXXXX``; case, spaces and hyphens do not matter, and the look-alikes O, I
and L read as 0, 1 and 1.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from gateway.core.errors import BadInput, DomainError

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10
LOOK_ALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


class LinkVia(StrEnum):
    """How a link was made or withdrawn."""

    CODE = "CODE"  # the member's one-time code, redeemed by the partner
    ADMIN = "ADMIN"  # an operator, directly
    MEMBER = "MEMBER"  # the member withdrew it


class LinkAction(StrEnum):
    LINKED = "LINKED"
    UNLINKED = "UNLINKED"


def code_from_indexes(indexes: list[int]) -> str:
    """A code from ``CODE_LENGTH`` indexes into the alphabet (the caller draws them at random)."""
    if len(indexes) != CODE_LENGTH:
        raise ValueError(f"a link code has {CODE_LENGTH} characters")
    raw = "".join(CODE_ALPHABET[i] for i in indexes)
    return f"{raw[:5]}-{raw[5:]}"


def normalize_code(typed: str) -> str:
    """The code as stored (hashed): upper case, no separators, look-alikes mapped."""
    code = "".join(typed.split()).replace("-", "").upper().translate(LOOK_ALIKES)
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        raise invalid_code()
    return code


def code_hash(typed: str) -> str:
    return hashlib.sha256(normalize_code(typed).encode()).hexdigest()


def invalid_code() -> DomainError:
    """One answer for unknown, expired, used and another partner's codes, so none can be told apart."""
    return DomainError("This link code is not valid (unknown, expired or already used)", code="LINK_CODE_INVALID")


def check_partner_member_ref(ref: str) -> str:
    ref = ref.strip()
    if not 1 <= len(ref) <= 128:
        raise BadInput("partnerMemberRef must be 1 to 128 characters", field="partnerMemberRef")
    return ref
