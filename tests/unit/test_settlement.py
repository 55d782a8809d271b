"""Pure settlement maths: money per point at recorded rates, rounded once per side."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.settlement import SettlementTotals, round_fen, settlement_money


def test_round_fen_half_away_from_zero() -> None:
    assert [round_fen(v) for v in (0, 499, 500, 1499, 1500, -500, -499)] == [0, 0, 1, 1, 2, -1, 0]


def test_settlement_nets_owed_against_funded_at_money_per_point() -> None:
    totals = SettlementTotals(
        accrued=1000,
        accrual_reversed=100,
        burned=600,
        burn_reversed=50,
        converted_in=300,
        converted_out=200,
        conversion_reversed_in=0,
        conversion_reversed_out=20,
        fees=7,
    )
    assert totals.funded_by_partner == 1200
    assert totals.owed_to_partner == 730
    assert totals.net_points == -470
    money = settlement_money({2_133: totals})  # ¥0.02133 per point: fractional fen per point stays exact
    assert money.funded_by_partner_milli_fen == 2_559_600
    assert money.owed_to_partner_milli_fen == 1_557_090
    assert money.net_milli_fen == -1_002_510
    assert (money.funded_by_partner_fen, money.owed_to_partner_fen, money.net_fen) == (2560, 1557, -1003)


totals_strategy = st.builds(
    SettlementTotals,
    accrued=st.integers(0, 10**7),
    burned=st.integers(0, 10**7),
    accrual_reversed=st.integers(0, 10**6),
    burn_reversed=st.integers(0, 10**6),
    converted_in=st.integers(0, 10**7),
    converted_out=st.integers(0, 10**7),
    conversion_reversed_in=st.integers(0, 10**6),
    conversion_reversed_out=st.integers(0, 10**6),
)


@given(by_rate=st.dictionaries(st.integers(0, 100_000), totals_strategy, max_size=6))
def test_statement_money_adds_up_at_any_mix_of_rates(by_rate) -> None:
    money = settlement_money(by_rate)
    funded = sum(t.funded_by_partner * rate for rate, t in by_rate.items())
    owed = sum(t.owed_to_partner * rate for rate, t in by_rate.items())
    assert (money.funded_by_partner_milli_fen, money.owed_to_partner_milli_fen) == (funded, owed)
    assert money.net_milli_fen == owed - funded
    assert money.owed_to_partner_fen - money.funded_by_partner_fen == money.net_fen
    assert abs(money.funded_by_partner_fen * 1_000 - funded) <= 500
    assert abs(money.owed_to_partner_fen * 1_000 - owed) <= 500
    assert abs(money.net_fen * 1_000 - money.net_milli_fen) <= 1_000
