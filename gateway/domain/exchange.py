"""Coalition partner arithmetic: exchange rates, rounding, fees, accrual by amount, daily limits.

Pure functions over integers. The one rounding rule everywhere: rounding never
creates points. A conversion moves whole *units* of the rate (for 10:1, 10
partner points make one unit worth 1 coalition point); whatever does not fill a
unit stays with the member as a remainder and is not consumed. Fees round up
(in the program's favour) and accrual by amount rounds down. Settlement money is
in ``gateway.domain.settlement``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from math import gcd

from gateway.core.errors import BadInput, DomainError

BASIS_POINTS = 10_000


class Direction(StrEnum):
    PARTNER_TO_COALITION = "PARTNER_TO_COALITION"
    COALITION_TO_PARTNER = "COALITION_TO_PARTNER"


@dataclass(frozen=True)
class Rate:
    """``partner_points`` of the partner's currency are worth ``coalition_points`` coalition points."""

    partner_points: int
    coalition_points: int

    def validated(self) -> Rate:
        if not (1 <= self.partner_points <= 1_000_000 and 1 <= self.coalition_points <= 1_000_000):
            raise BadInput("exchange rate terms must be integers from 1 to 1,000,000", field="rate")
        return self

    def reduced(self) -> Rate:
        """10:2 converts like 5:1; reducing makes the unit as small as the rate allows."""
        common = gcd(self.partner_points, self.coalition_points)
        return Rate(self.partner_points // common, self.coalition_points // common)


@dataclass(frozen=True)
class Fee:
    """Charged on conversions, in coalition points: ``fixed`` plus ``basis_points`` of the gross, rounded up."""

    basis_points: int = 0
    fixed: int = 0

    def validated(self) -> Fee:
        if not 0 <= self.basis_points <= BASIS_POINTS:
            raise BadInput("feeBasisPoints must be from 0 to 10000", field="feeBasisPoints")
        if self.fixed < 0:
            raise BadInput("feeFixedPoints must not be negative", field="feeFixedPoints")
        return self

    def on(self, gross: int) -> int:
        if gross <= 0:
            return 0
        return self.fixed + -(-gross * self.basis_points // BASIS_POINTS)


@dataclass(frozen=True)
class Conversion:
    """What a conversion moves.

    ``partner_points`` are the partner points consumed (PARTNER_TO_COALITION) or
    issued (COALITION_TO_PARTNER); ``coalition_points`` are credited to or debited
    from the member (debits include the fee); ``remainder`` is what was offered
    but not converted, in the currency offered.
    """

    direction: Direction
    offered: int
    partner_points: int
    coalition_points: int
    fee: int
    remainder: int

    @property
    def gross_coalition(self) -> int:
        """Coalition points the converted units are worth, before the fee."""
        if self.direction is Direction.PARTNER_TO_COALITION:
            return self.coalition_points + self.fee
        return self.coalition_points - self.fee


def convert(direction: Direction, offered: int, rate: Rate, fee: Fee = Fee()) -> Conversion:
    """Convert ``offered`` points (in the currency the direction starts from) in whole units.

    PARTNER_TO_COALITION: the member credits ``units * c - fee`` coalition points
    and the partner debits ``units * p`` partner points. COALITION_TO_PARTNER: the
    member spends ``units * c + fee`` coalition points and receives ``units * p``
    partner points. Nothing that does not fill a unit moves.
    """
    if offered <= 0:
        raise BadInput("points to convert must be positive", field="points")
    unit = rate.validated().reduced()
    if direction is Direction.PARTNER_TO_COALITION:
        units = offered // unit.partner_points
        consumed = units * unit.partner_points
        gross = units * unit.coalition_points
        charged = fee.on(gross)
        if gross - charged <= 0:
            raise DomainError(
                f"{offered} partner points convert to {gross} coalition points, which do not cover the fee "
                f"of {charged}; at least {unit.partner_points} partner points make one coalition unit",
                code="CONVERSION_TOO_SMALL",
                minimum=unit.partner_points,
            )
        return Conversion(direction, offered, consumed, gross - charged, charged, offered - consumed)
    units = offered // unit.coalition_points
    used = units * unit.coalition_points
    if units == 0:
        raise DomainError(
            f"At least {unit.coalition_points} coalition points make one partner unit",
            code="CONVERSION_TOO_SMALL",
            minimum=unit.coalition_points,
        )
    charged = fee.on(used)
    return Conversion(direction, offered, units * unit.partner_points, used + charged, charged, offered - used)


@dataclass(frozen=True)
class AccrualRate:
    """``points`` coalition points per ``per_fen`` fen spent at the partner (default 1 per ¥1)."""

    points: int = 1
    per_fen: int = 100

    def validated(self) -> AccrualRate:
        if self.points < 1 or self.per_fen < 1:
            raise BadInput("accrual rate terms must be positive integers", field="accrualRate")
        return self

    def points_for(self, amount_fen: int) -> int:
        """Rounded down: a purchase never earns a fraction of a point."""
        if amount_fen <= 0:
            raise BadInput("amount must be positive fen", field="amount")
        return amount_fen * self.points // self.per_fen


class LimitExceeded(DomainError):
    code = "PARTNER_LIMIT_EXCEEDED"


def check_daily_limit(operation: str, used_after: int, limit: int | None) -> None:
    """``used_after`` is the day's total including this operation; None means unlimited."""
    if limit is not None and used_after > limit:
        raise LimitExceeded(
            f"Daily {operation} limit of {limit} coalition points would be exceeded",
            limit=limit,
            used=used_after,
            operation=operation,
        )
