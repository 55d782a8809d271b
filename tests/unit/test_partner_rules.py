"""Pure partner rules: link codes, one command builder for both channels, the reversal window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum

import pytest

from gateway.core.errors import DomainError
from gateway.domain.exchange import Direction
from gateway.domain.partner_commands import OperationType, PartnerCommand, check_reversal_window
from gateway.domain.partner_links import CODE_LENGTH, code_from_indexes, code_hash, normalize_code
from gateway.domain.partner_terms import is_active, require_active


def test_link_codes_are_shown_grouped_and_read_back_forgivingly() -> None:
    code = code_from_indexes([0, 1, 25, 31, 17, 2, 3, 4, 5, 6])
    assert code == "01SZH-23456"
    assert normalize_code(" 01szh 23456 ") == normalize_code("O1SZH-2345 6") == "01SZH23456"
    assert code_hash("01szh-23456") == code_hash(code)
    assert normalize_code("IL000-00000") == "11000" + "00000"


@pytest.mark.parametrize("typed", ["", "01SZH-2345", "01SZH-234567", "01SZH-2345U"])
def test_malformed_codes_are_invalid_codes(typed: str) -> None:
    with pytest.raises(DomainError) as caught:
        normalize_code(typed)
    assert caught.value.code == "LINK_CODE_INVALID"
    assert len(typed.replace("-", "")) != CODE_LENGTH or "U" in typed


class MirroredDirection(Enum):  # what a GraphQL enum argument arrives as
    COALITION_TO_PARTNER = "COALITION_TO_PARTNER"


@dataclass
class GraphQLInput:
    event_id: str
    member_ref: str
    points: int
    direction: MirroredDirection
    occurred_at: datetime | None = None


@dataclass
class KafkaEvent:
    event_id: str
    member_ref: str
    points: int
    direction: Direction
    amount: None = None
    original_event_id: None = None
    occurred_at: datetime | None = None


def test_graphql_and_kafka_build_the_same_command() -> None:
    at = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
    from_graphql = PartnerCommand.from_request(
        OperationType.CONVERT, GraphQLInput("e1", "C-1", 45, MirroredDirection.COALITION_TO_PARTNER)
    )
    from_kafka = PartnerCommand.from_request(
        "CONVERT", KafkaEvent("e1", "C-1", 45, Direction.COALITION_TO_PARTNER, occurred_at=at)
    )
    assert from_graphql == from_kafka  # occurredAt is informational, not part of what must match
    assert from_kafka.direction is Direction.COALITION_TO_PARTNER and from_kafka.occurred_at == at
    assert from_graphql.idempotency_payload() == from_kafka.idempotency_payload()


def test_the_reversal_window_includes_its_last_instant() -> None:
    made = datetime(2026, 3, 2, tzinfo=UTC)
    check_reversal_window(made, made + timedelta(days=90), 90)
    with pytest.raises(DomainError) as caught:
        check_reversal_window(made, made + timedelta(days=90, microseconds=1), 90)
    assert caught.value.code == "REVERSAL_WINDOW_CLOSED"
    assert caught.value.extensions["windowDays"] == 90


def test_one_rule_for_an_active_partner() -> None:
    assert is_active({}) and is_active({"active": True}) and not is_active({"active": False})
    with pytest.raises(DomainError) as caught:
        require_active({"active": False})
    assert caught.value.code == "PARTNER_INACTIVE"
