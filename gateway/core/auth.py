"""Who is calling: JWT bearer tokens for people, API keys for partners."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt

from gateway.core.errors import Forbidden, Unauthenticated, quote

ALGORITHM = "HS256"
API_KEY_PREFIX = "lgk_"


class Role(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"
    DASHBOARD = "dashboard"
    PARTNER = "partner"
    PAYMENTS = "payments"  # the payment service: confirms that the cash part of an order was paid
    # Staff with narrower powers than an admin; what each may do is gateway/core/permissions.py.
    SUPPORT = "support"
    FINANCE = "finance"
    WAREHOUSE = "warehouse"
    MARKETING = "marketing"


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str
    # When the credential stops being valid (a token's exp); a WebSocket closes then (4403).
    expires_at: datetime | None = field(default=None, compare=False)
    # A partner's own document, as authentication read it: its operations reuse it
    # instead of reading it again (not part of the caller's identity).
    partner: dict[str, Any] | None = field(default=None, compare=False, repr=False)


def mint_token(secret: str, *, role: Role, subject: str, now: datetime, ttl: timedelta) -> str:
    claims = {"sub": subject, "role": role.value, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


# (secret, token) -> (its principal, its exp): a verified token's signature and claims never change,
# only its expiry must be checked again. Bounded: a client cannot grow it without limit.
_VERIFIED: dict[tuple[str, str], tuple[Principal, int]] = {}
VERIFIED_LIMIT = 10_000


def decode_token(secret: str, token: str) -> Principal:
    """Verify signature and expiry; a partner never authenticates with a JWT.

    A token verified before is not verified again (an HS256 check and the claims' parsing on
    every request of a signed-in storefront): its principal is remembered with its ``exp``, which
    is checked against the clock each time, as PyJWT checks it (expired once ``exp <= now``).
    """
    cached = _VERIFIED.get((secret, token))
    if cached is not None:
        principal, expires = cached
        if expires <= datetime.now(UTC).timestamp():
            raise Unauthenticated("Token has expired")
        return principal
    principal = _verify(secret, token)
    if len(_VERIFIED) >= VERIFIED_LIMIT:
        _VERIFIED.clear()
    assert principal.expires_at is not None
    _VERIFIED[(secret, token)] = (principal, int(principal.expires_at.timestamp()))
    return principal


def _verify(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("Token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"Invalid token: {exc}") from None
    try:
        role = Role(str(claims.get("role")))
    except ValueError:
        raise Unauthenticated("Token has an unknown role") from None
    if role is Role.PARTNER:
        raise Unauthenticated("Partners authenticate with X-Api-Key")
    return Principal(role=role, subject=str(claims["sub"]), expires_at=datetime.fromtimestamp(claims["exp"], UTC))


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """API keys are high-entropy random strings, so a plain SHA-256 is enough to store."""
    return hashlib.sha256(key.encode()).hexdigest()


def require_principal(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthenticated("Authentication required")
    return principal


def require_role(principal: Principal | None, *roles: Role) -> Principal:
    who = require_principal(principal)
    if who.role not in roles:
        raise Forbidden(f"Role {quote(who.role.value)} may not do this")
    return who


def require_member_access(principal: Principal | None, member_id: str) -> Principal:
    """Admins see every member; a member sees only themselves."""
    who = require_principal(principal)
    if who.role is Role.ADMIN or (who.role is Role.MEMBER and who.subject == member_id):
        return who
    raise Forbidden("Not allowed to access this member")
