"""The member filter's rules: validation, normalization, search keys and cursors (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.analytics import Segment
from gateway.domain.ledger_view import LedgerFilter
from gateway.domain.member_search import (
    InvalidFilter,
    MemberFilter,
    MemberOrder,
    Position,
    name_suffixes,
    nest,
    normalize_name,
    phone_digits,
    position_of,
    search_keys,
    segment_window,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)


def test_names_compare_case_and_width_insensitively():
    assert normalize_name("  Alice   LIDDELL ") == "alice liddell"
    assert normalize_name("ＡＬＩＣＥ") == "alice"  # full-width, as a Chinese keyboard types it
    assert normalize_name("Straße") == "strasse"


def test_a_substring_of_the_name_is_a_prefix_of_one_stored_suffix():
    suffixes = name_suffixes("王小明")
    assert suffixes == ["王小明", "小明", "明"]
    assert name_suffixes("Ann Lee") == ["ann lee", "nn lee", "n lee", "lee", "ee", "e"]


@given(st.text(min_size=1, max_size=30), st.data())
def test_every_substring_search_finds_the_name(name, data):
    normalized = normalize_name(name)
    if not normalized:
        return
    start = data.draw(st.integers(0, len(normalized) - 1))
    end = data.draw(st.integers(start + 1, len(normalized)))
    query = normalized[start:end].strip()
    if not query:
        return
    assert any(s.startswith(query) for s in name_suffixes(name))


def test_phone_keeps_digits_and_matches_by_its_last_digits():
    assert phone_digits("+86 138-0013-8000") == "8613800138000"
    assert phone_digits("１３８") == "138"
    keys = search_keys({"phone": "+86 138-0013-8000"})
    assert keys["search.phone"] == "0008310083168"
    assert keys["search.phone"].startswith(MemberFilter.parse(phone="8000").phone[::-1])
    assert search_keys({"phone": None}) == {"search.phone": None}
    assert search_keys({"email": "x@y.cn"}) == {}


def test_nest_turns_dotted_keys_into_a_subdocument():
    assert nest({"search.name": ["a"], "search.phone": None}) == {"search": {"name": ["a"], "phone": None}}


def test_parse_normalizes_and_deduplicates():
    f = MemberFilter.parse(
        name=" ALI ",
        phone="138 0013",
        email=" Alice@Example.COM ",
        tiers=["VIP", "VIP", "SENIOR"],
        segments=["CHAMPIONS", Segment.CHAMPIONS],
    )
    assert f.name == "ali"
    assert f.phone == "1380013"
    assert f.email == "alice@example.com"
    assert f.tiers == ("VIP", "SENIOR")
    assert f.segments == (Segment.CHAMPIONS,)
    assert MemberFilter.parse().is_empty and not f.is_empty


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "a\u202eb"}, "name"),
        ({"name": "x" * 81}, "name"),
        ({"phone": "12a"}, "phone"),
        ({"phone": "1" * 40}, "phone"),
        ({"email": "ab"}, "email"),
        ({"email": "a b@c.d"}, "email"),
        ({"tiers": ["vip"]}, "tiers"),
        ({"tiers": [f"T{i}" for i in range(21)]}, "tiers"),
        ({"segments": ["BEST"]}, "segments"),
        ({"joined_from": datetime(2026, 1, 1)}, "joinedFrom"),
        ({"joined_from": T1, "joined_to": T0}, "joinedTo"),
        ({"joined_from": T0, "joined_to": T0}, "joinedTo"),
        ({"spend_min": -1}, "spendMin"),
        ({"spend_min": 500, "spend_max": 100}, "spendMax"),
    ],
)
def test_bad_input_names_its_field(raw, field):
    with pytest.raises(InvalidFilter) as caught:
        MemberFilter.parse(**raw)
    assert caught.value.field == field


def test_describe_lists_only_what_filters():
    f = MemberFilter.parse(tiers=["VIP"], spend_min=0, joined_from=T0)
    assert f.describe() == {"tiers": ["VIP"], "spendMin": 0, "joinedFrom": T0.isoformat()}


@given(
    st.sampled_from(list(MemberOrder)),
    st.datetimes(timezones=st.just(UTC)),
    st.integers(0, 10**15),
    st.text(min_size=1, max_size=64).filter(lambda s: "\x00" not in s),
)
def test_a_cursor_decodes_to_the_position_it_encodes(order, at, spend, member_id):
    member = {"_id": member_id, "registeredAt": at, "lifetimeSpend": spend}
    position = position_of(order, member)
    assert Position.decode(position.encode(), order) == position


def test_a_cursor_of_another_order_or_shape_is_refused():
    newest = position_of(MemberOrder.NEWEST, {"_id": "m1", "registeredAt": T0}).encode()
    with pytest.raises(ValueError):
        Position.decode(newest, MemberOrder.HIGHEST_SPEND)
    for raw in ("", "NEWEST|x|m1", "NEWEST|2026-01-01T00:00:00|m1", "HIGHEST_SPEND|1e5|m1", "NEWEST|" + T0.isoformat()):
        with pytest.raises(ValueError):
            Position.decode(raw, MemberOrder.NEWEST if raw.startswith("NEWEST") else MemberOrder.HIGHEST_SPEND)


def test_the_segment_window_is_the_days_ending_today():
    today = date(2026, 3, 2)
    assert segment_window(today, 365) == (date(2025, 3, 3), today)
    assert segment_window(today, 1) == (today, today)
    for bad in (0, 3661):
        with pytest.raises(ValueError):
            segment_window(today, bad)


def test_a_ledger_filter_is_validated_and_deduplicated():
    f = LedgerFilter.parse(kinds=["GRANT", "GRANT", "PURCHASE"], source_type="ORDER", source_id="o-1", since=T0)
    assert f.kinds == ("GRANT", "PURCHASE") and f.source_type == "ORDER" and f.since == T0
    assert LedgerFilter.parse() == LedgerFilter()
    for raw, field in (
        ({"since": T1, "until": T0}, "until"),
        ({"since": datetime(2026, 1, 1)}, "since"),
        ({"source_type": "order"}, "sourceType"),
        ({"source_id": "a\nb"}, "sourceId"),
        ({"partner_id": ""}, "partnerId"),
        ({"kinds": [f"K{i}" for i in range(31)]}, "kinds"),
    ):
        with pytest.raises(InvalidFilter) as caught:
            LedgerFilter.parse(**raw)
        assert caught.value.field == field
