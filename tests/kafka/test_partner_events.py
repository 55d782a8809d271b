"""The partner event format without a broker: canonical form, signature, schema rejections."""

from __future__ import annotations

import hashlib
import hmac

import orjson
import pytest

from gateway.domain.partner_signing import canonical, sign, signed_event
from gateway.workers.partner_consumer import Rejected, parse

DOC_EVENT = {
    "partnerId": "coffee",
    "eventId": "order-2026-000123",
    "type": "ACCRUE",
    "memberRef": "CC-778899",
    "amount": 3850,
    "occurredAt": "2026-03-02T04:00:00Z",
}


def test_canonical_form_is_the_documented_nine_lines() -> None:
    assert canonical(DOC_EVENT) == b"coffee\norder-2026-000123\nACCRUE\nCC-778899\n\n3850\n\n\n2026-03-02T04:00:00Z"


def test_signature_matches_the_documented_python_snippet() -> None:
    fields = (
        "partnerId",
        "eventId",
        "type",
        "memberRef",
        "points",
        "amount",
        "direction",
        "originalEventId",
        "occurredAt",
    )
    text = "\n".join("" if DOC_EVENT.get(f) is None else str(DOC_EVENT[f]) for f in fields)
    expected = hmac.new(b"lgs_secret", text.encode(), hashlib.sha256).hexdigest()
    assert sign(DOC_EVENT, "lgs_secret") == expected
    event = parse(signed_event("lgs_secret", **DOC_EVENT))
    assert event.signature == expected and event.command().amount == 3850


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "BAD_JSON"),
        (b"{oops", "BAD_JSON"),
        (b"[1, 2]", "INVALID_EVENT"),
        (orjson.dumps({**DOC_EVENT, "signature": "ab", "amount": 38.5}), "INVALID_EVENT"),
        (orjson.dumps({**DOC_EVENT, "signature": "ab", "amount": "3850"}), "INVALID_EVENT"),
        (orjson.dumps({**DOC_EVENT, "signature": "ab", "type": "STEAL"}), "INVALID_EVENT"),
        (orjson.dumps({**DOC_EVENT, "signature": "ab", "occurredAt": "2026-03-02T04:00:00"}), "INVALID_EVENT"),
        (orjson.dumps(DOC_EVENT), "INVALID_EVENT"),
    ],
)
def test_malformed_events_are_rejected_with_a_reason(raw: bytes, code: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse(raw)
    assert caught.value.code == code and caught.value.reason
