"""Turn request credentials into a Principal: a bearer JWT or a partner's API key."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.core.auth import Principal, Role, decode_token, hash_api_key
from gateway.core.errors import Unauthenticated
from gateway.domain.partner_terms import is_active
from gateway.store.mongo import Database
from gateway.store.partners import find_partner_by_key_hash


async def principal_from_api_key(db: Database, api_key: str) -> Principal:
    partner = await find_partner_by_key_hash(db, hash_api_key(api_key))
    if partner is None:
        raise Unauthenticated("Unknown API key")
    if not is_active(partner):
        raise Unauthenticated("Partner is not active")
    return Principal(role=Role.PARTNER, subject=partner["_id"], partner=partner)


async def authenticate(headers: Mapping[str, str], *, db: Database, jwt_secret: str) -> Principal | None:
    """None when no credentials were sent; Unauthenticated when they are wrong.

    Bad credentials fail the whole request rather than silently downgrading it
    to anonymous, so a client learns at once that its token expired.
    """
    api_key = headers.get("x-api-key")
    if api_key:
        return await principal_from_api_key(db, api_key)
    authorization = headers.get("authorization")
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be 'Bearer <token>'")
    return decode_token(jwt_secret, token.strip())
