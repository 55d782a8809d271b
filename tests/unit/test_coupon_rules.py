"""Coupon code rules: generation, import reading, pool arithmetic, the cancel window."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.coupons import (
    ALPHABET,
    FAR_FUTURE,
    CodeStatus,
    CouponProblem,
    PoolCounts,
    cancel_deadline,
    cancel_refusal,
    cancel_window_problem,
    code_problem,
    expired,
    expiry_sort_key,
    generate_codes,
    generation_problem,
    hint,
    min_length_for,
    plan_import,
    pool_counts,
    status_after_return,
)

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_the_alphabet_has_no_look_alikes():
    assert not set(ALPHABET) & set("0O1IL")
    assert len(set(ALPHABET)) == len(ALPHABET) == 31


@given(prefix=st.sampled_from(["", "MJ", "FREE-SHIP-"]), length=st.integers(6, 16), count=st.integers(1, 300))
def test_generated_codes_are_distinct_and_shaped(prefix, length, count):
    codes = generate_codes(prefix, length, count)
    assert len(codes) == len(set(codes)) == count
    for code in codes:
        assert code.startswith(prefix) and len(code) == len(prefix) + length
        assert set(code[len(prefix) :]) <= set(ALPHABET)


def test_generation_draws_again_on_a_collision():
    """A deterministic 'random' source that repeats itself: the repeats are drawn again, never kept."""
    rng = random.Random(7)
    draws = iter(["A", "A", "A", "A", "A", "A"] * 2 + [rng.choice(ALPHABET) for _ in range(6000)])
    codes = generate_codes("", 6, 50, choice=lambda alphabet: next(draws))
    assert len(set(codes)) == 50 and codes[0] == "AAAAAA"


def test_the_random_part_must_be_long_enough_for_the_pool():
    # 31^6 = 887,503,681 combinations: a million per code allows 887 codes of length 6.
    assert min_length_for(887) == 6 and min_length_for(888) == 7
    assert generation_problem("", 6, 887, 0) is None
    assert generation_problem("", 6, 500, 400)[0] == "length"
    assert min_length_for(100_000) == 8
    assert generation_problem("MJ-", 8, 20_000, 0) is None


def test_bad_generation_requests_name_their_field():
    assert generation_problem("mj", 10, 10, 0)[0] == "prefix"  # lower case is refused: codes are upper case
    assert generation_problem("-MJ", 10, 10, 0)[0] == "prefix"
    assert generation_problem("", 5, 10, 0)[0] == "length"
    assert generation_problem("", 33, 10, 0)[0] == "length"
    assert generation_problem("", 10, 0, 0)[0] == "count"
    assert generation_problem("", 10, 20_001, 0)[0] == "count"


def test_an_import_is_trimmed_deduplicated_and_bad_lines_are_numbered():
    plan = plan_import(["  A1  ", "", "B2", "A1", "bad code", "x" * 65, "B2", "c3"])
    assert plan.codes == ["A1", "B2", "c3"]  # case is kept: imported codes may be case-sensitive
    assert plan.duplicates_in_input == 2
    assert [line for line, _ in plan.invalid] == [5, 6]
    assert code_problem("ok-CODE_1") is None and code_problem("tab\there")


def test_a_hint_shows_only_the_last_four_characters():
    assert hint("MJ-ABCDEFGH") == "…EFGH"


def test_pool_counts_add_up_and_expired_codes_are_expired_whatever_their_state():
    counts = pool_counts(
        [
            (CodeStatus.AVAILABLE, False, 5),
            (CodeStatus.AVAILABLE, True, 2),  # past expiry, not yet swept
            (CodeStatus.ASSIGNED, False, 3),
            (CodeStatus.ASSIGNED, True, 1),  # given, never used, now expired
            (CodeStatus.USED, True, 4),  # used stays used
            (CodeStatus.EXPIRED, True, 6),
            (CodeStatus.VOID, False, 1),
        ]
    )
    assert counts == PoolCounts(available=5, assigned=3, used=4, expired=9, void=1)
    assert counts.total == 22


@given(st.lists(st.tuples(st.sampled_from(list(CodeStatus)), st.booleans(), st.integers(0, 1000))))
def test_pool_counts_never_lose_a_code(groups):
    assert pool_counts(groups).total == sum(n for _, _, n in groups)


def test_expiry_is_exclusive_and_codes_without_one_sort_last():
    assert not expired(None, NOW)
    assert not expired(NOW + timedelta(seconds=1), NOW)
    assert expired(NOW, NOW)
    assert expiry_sort_key(None) == FAR_FUTURE > expiry_sort_key(NOW + timedelta(days=3650))


def test_the_cancel_window_runs_from_fulfilment_and_closes_at_its_end():
    until = cancel_deadline(NOW, 60)
    assert until == NOW + timedelta(hours=1)
    issued = [CodeStatus.ASSIGNED]
    assert cancel_refusal(issued, until, NOW + timedelta(minutes=59)) is None
    assert cancel_refusal(issued, until, until) is CouponProblem.CANCEL_WINDOW_CLOSED
    assert cancel_refusal(issued, cancel_deadline(NOW, 0), NOW) is CouponProblem.CANCEL_WINDOW_CLOSED
    assert cancel_refusal(issued, None, NOW) is CouponProblem.CANCEL_WINDOW_CLOSED


def test_a_used_code_keeps_its_order_whatever_the_window():
    until = cancel_deadline(NOW, 60)
    assert cancel_refusal([CodeStatus.ASSIGNED, CodeStatus.USED], until, NOW) is CouponProblem.COUPON_USED
    assert cancel_refusal([CodeStatus.USED], until, until + timedelta(days=1)) is CouponProblem.COUPON_USED


def test_a_returned_code_goes_back_to_the_pool_unless_its_time_is_up():
    assert status_after_return(None, NOW) is CodeStatus.AVAILABLE
    assert status_after_return(NOW + timedelta(days=1), NOW) is CodeStatus.AVAILABLE
    assert status_after_return(NOW, NOW) is CodeStatus.EXPIRED


def test_cancel_windows_are_bounded():
    assert cancel_window_problem(0) is None and cancel_window_problem(129_600) is None
    assert cancel_window_problem(-1) and cancel_window_problem(129_601)


def test_codes_are_sealed_bound_to_their_document_and_hashed_with_the_key(tmp_path):
    import pytest
    from cryptography.exceptions import InvalidTag

    from gateway.features.coupons import CodeSealer

    sealer = CodeSealer("k" * 32)
    sealed = sealer.seal("cpc_1", "MJ-ABCD2345")
    assert b"MJ-ABCD2345" not in sealed
    assert sealer.open("cpc_1", sealed) == "MJ-ABCD2345"
    assert sealer.seal("cpc_1", "MJ-ABCD2345") != sealed  # a fresh nonce each time
    with pytest.raises(InvalidTag):
        sealer.open("cpc_2", sealed)  # moved onto another code's document: refused
    with pytest.raises(InvalidTag):
        CodeSealer("j" * 32).open("cpc_1", sealed)
    assert sealer.digest("MJ-ABCD2345") == CodeSealer("k" * 32).digest("MJ-ABCD2345")
    assert sealer.digest("MJ-ABCD2345") != CodeSealer("j" * 32).digest("MJ-ABCD2345")


def test_production_needs_its_own_coupon_key(tmp_path):
    import pytest

    from gateway.core.settings import Settings, SettingsError

    production = {"environment": "production", "jwt_secret": "s" * 32, "data_dir": tmp_path}
    with pytest.raises(SettingsError, match="LOYALTY_COUPON_CODE_KEY is required"):
        Settings(**production).resolved_coupon_code_key()
    with pytest.raises(SettingsError, match="at least 32"):
        Settings(**production, coupon_code_key="short").resolved_coupon_code_key()
    assert Settings(**production, coupon_code_key="c" * 32).resolved_coupon_code_key() == "c" * 32
    development = Settings(data_dir=tmp_path)
    assert development.resolved_coupon_code_key() == development.resolved_coupon_code_key()  # kept in the data dir
    assert (tmp_path / "coupon-code-key").stat().st_mode & 0o777 == 0o600
