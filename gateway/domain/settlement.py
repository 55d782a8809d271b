"""Settlement maths for coalition partners: totals by bucket, money per point, rounding once.

Pure functions over plain data. A partner funds the points it puts into members'
accounts (accruals and conversions in, less reversals); the operator owes the
partner for what members redeem there (burns and conversions out, less
reversals). Money is exact in milli-fen (1/1000 fen), each operation priced at the
money-per-point rate recorded on it, until a statement rounds each of its two
sides once (see ``SettlementMoney``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

MILLI = 1_000

# Ledger entry kinds and partner operation types, as stored (plain strings: the domain
# does not import the ledger or the features).
ACCRUE_KIND = "PARTNER_ACCRUE"
BURN_KIND = "PARTNER_BURN"
REVERSE_KIND = "PARTNER_REVERSE"
CONVERT_IN_KIND = "PARTNER_CONVERT_IN"
CONVERT_OUT_KIND = "PARTNER_CONVERT_OUT"
REVERSED_BUCKET = {
    ACCRUE_KIND: "accrual_reversed",
    BURN_KIND: "burn_reversed",
    CONVERT_IN_KIND: "conversion_reversed_in",
    CONVERT_OUT_KIND: "conversion_reversed_out",
}


def money_milli_fen(points: int, milli_fen_per_point: int) -> int:
    """Exact settlement value in milli-fen (1/1000 fen), so fractional per-point prices stay exact."""
    return points * milli_fen_per_point


def round_fen(milli_fen: int) -> int:
    """Milli-fen to fen, half away from zero (statements round once, at the total)."""
    sign = -1 if milli_fen < 0 else 1
    return sign * ((abs(milli_fen) + MILLI // 2) // MILLI)


@dataclass(frozen=True)
class SettlementTotals:
    """Per-partner totals for a period, in coalition points.

    The partner funds what it put into members' accounts (accruals and conversions
    into coalition points, less what it reversed); the operator owes the partner
    for what members redeemed there (burns and conversions out of coalition
    points, less what it reversed). Conversion fees are the operator's and are
    neither funded nor owed.
    """

    accrued: int = 0
    burned: int = 0
    accrual_reversed: int = 0
    burn_reversed: int = 0
    converted_in: int = 0
    converted_out: int = 0
    conversion_reversed_in: int = 0
    conversion_reversed_out: int = 0
    fees: int = 0

    def __add__(self, other: SettlementTotals) -> SettlementTotals:
        return SettlementTotals(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def funded_by_partner(self) -> int:
        return self.accrued - self.accrual_reversed + self.converted_in - self.conversion_reversed_in

    @property
    def owed_to_partner(self) -> int:
        return self.burned - self.burn_reversed + self.converted_out - self.conversion_reversed_out

    @property
    def net_points(self) -> int:
        """Positive: the operator pays the partner; negative: the partner pays the operator."""
        return self.owed_to_partner - self.funded_by_partner


@dataclass(frozen=True)
class SettlementMoney:
    """A statement's money. Exact in milli-fen; in fen each side is rounded once and net is their difference.

    ``funded_by_partner_fen`` and ``owed_to_partner_fen`` are their exact milli-fen
    totals rounded half away from zero, once, at the total (never per operation);
    ``net_fen`` is ``owed_to_partner_fen - funded_by_partner_fen``, so the fen on a
    statement always add up (it may differ from ``round_fen(net_milli_fen)`` by one fen).
    """

    funded_by_partner_milli_fen: int
    owed_to_partner_milli_fen: int

    @property
    def net_milli_fen(self) -> int:
        return self.owed_to_partner_milli_fen - self.funded_by_partner_milli_fen

    @property
    def funded_by_partner_fen(self) -> int:
        return round_fen(self.funded_by_partner_milli_fen)

    @property
    def owed_to_partner_fen(self) -> int:
        return round_fen(self.owed_to_partner_milli_fen)

    @property
    def net_fen(self) -> int:
        return self.owed_to_partner_fen - self.funded_by_partner_fen


def settlement_money(by_rate: Mapping[int, SettlementTotals]) -> SettlementMoney:
    """Money for a statement whose points were made at several recorded rates (milli-fen per point).

    Each operation is priced at the rate recorded when it was made, so changing a
    partner's rate never re-prices operations already made.
    """
    funded = sum(money_milli_fen(t.funded_by_partner, rate) for rate, t in by_rate.items())
    owed = sum(money_milli_fen(t.owed_to_partner, rate) for rate, t in by_rate.items())
    return SettlementMoney(funded_by_partner_milli_fen=funded, owed_to_partner_milli_fen=owed)


def _zero() -> dict[str, int]:
    return dict.fromkeys((f.name for f in fields(SettlementTotals)), 0)


def totals_from_ledger_rows(rows: Iterable[Mapping[str, Any]]) -> SettlementTotals:
    """Map ledger sums by (kind, reversed kind) onto settlement buckets.

    Each row is ``{"_id": {"kind", "reverses"}, "earned", "spent", "fee"}``: the sums of
    ``delta.lifetimeEarned``, ``delta.spent`` and ``fee`` over a group of ledger entries.
    """
    sums = _zero()
    for row in rows:
        kind, reverses = row["_id"]["kind"], row["_id"].get("reverses")
        earned, spent, fee = row["earned"], row["spent"], row["fee"]
        sums["fees"] += fee
        if kind == ACCRUE_KIND:
            sums["accrued"] += earned
        elif kind == BURN_KIND:
            sums["burned"] += spent
        elif kind == CONVERT_IN_KIND:
            sums["converted_in"] += earned
        elif kind == CONVERT_OUT_KIND:
            sums["converted_out"] += spent - fee
        elif kind == REVERSE_KIND and reverses in (ACCRUE_KIND, CONVERT_IN_KIND):
            sums[REVERSED_BUCKET[reverses]] -= earned
        elif kind == REVERSE_KIND and reverses == BURN_KIND:
            sums["burn_reversed"] -= spent
        elif kind == REVERSE_KIND and reverses == CONVERT_OUT_KIND:
            sums["conversion_reversed_out"] -= spent - fee
    return SettlementTotals(**sums)


def totals_from_operations(ops: Iterable[Mapping[str, Any]]) -> SettlementTotals:
    """The same buckets from the partner operations log (an independent record of what partners did)."""
    sums = _zero()
    for op in ops:
        kind = op["type"]
        if kind == "REVERSE":
            reversed_kind = op["reverses"]["kind"]
            restored_fee = op["reversedFee"] if reversed_kind == CONVERT_OUT_KIND else 0
            sums[REVERSED_BUCKET[reversed_kind]] += op["points"] - restored_fee
            sums["fees"] -= op["reversedFee"]
        elif kind == "ACCRUE":
            sums["accrued"] += op["points"]
        elif kind == "BURN":
            sums["burned"] += op["points"]
        elif op["direction"] == "PARTNER_TO_COALITION":
            sums["converted_in"] += op["points"]
            sums["fees"] += op["fee"]
        else:
            sums["converted_out"] += op["points"] - op["fee"]
            sums["fees"] += op["fee"]
    return SettlementTotals(**sums)
