"""A verified token is remembered, but its expiry is checked on every use."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from gateway.core.auth import Principal, Role, decode_token, mint_token
from gateway.core.errors import Unauthenticated

SECRET = "unit-secret-that-is-long-enough-for-hs256"


def test_a_remembered_token_still_expires_and_a_forged_one_is_never_remembered() -> None:
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    token = mint_token(
        SECRET, role=Role.MEMBER, subject="alice", now=expires - timedelta(hours=1), ttl=timedelta(hours=1)
    )
    first = decode_token(SECRET, token)
    assert decode_token(SECRET, token) is first  # remembered
    assert first == Principal(Role.MEMBER, "alice") and first.expires_at == expires
    with pytest.raises(Unauthenticated, match="Invalid token"):
        decode_token("another-secret-that-is-long-enough-hs256", token)  # the secret is part of the key
    header, payload, _ = token.split(".")
    with pytest.raises(Unauthenticated, match="Invalid token"):
        decode_token(SECRET, f"{header}.{payload}.forged")
    time.sleep(max(0.0, expires.timestamp() - time.time()) + 0.05)
    with pytest.raises(Unauthenticated, match="Token has expired"):
        decode_token(SECRET, token)
