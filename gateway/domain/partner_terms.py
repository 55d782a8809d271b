"""A partner's configuration: what an admin sets, its defaults, and the rules read from it.

Pure: ``PartnerTerms.document()`` validates and turns terms into the stored fields;
the ``*_of`` readers give a stored partner's terms with their defaults, so every
caller reads them the same way. ``is_active`` is the one rule for whether a
partner may act (API key, operations, links, Kafka events).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import BadInput, DomainError
from gateway.domain.exchange import AccrualRate, Fee, Rate
from gateway.domain.text import unsafe_character

PARTNER_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
LIMIT_FIELDS = {"ACCRUE": "dailyAccruePoints", "BURN": "dailyBurnPoints", "CONVERT": "dailyConvertPoints"}
DEFAULT_REVERSAL_WINDOW_DAYS = 90
MAX_REVERSAL_WINDOW_DAYS = 3650
Partner = Mapping[str, Any]


@dataclass(frozen=True)
class Limits:
    """Per partner per day (program timezone), in coalition points; None is unlimited."""

    daily_accrue_points: int | None = None
    daily_burn_points: int | None = None
    daily_convert_points: int | None = None

    def document(self) -> dict[str, Any]:
        for name, value in vars(self).items():
            if value is not None and value < 0:
                raise BadInput(f"{name} must not be negative", field=name)
        return {
            "dailyAccruePoints": self.daily_accrue_points,
            "dailyBurnPoints": self.daily_burn_points,
            "dailyConvertPoints": self.daily_convert_points,
        }


@dataclass(frozen=True)
class PartnerTerms:
    """What an admin configures; every field optional on update."""

    name: str | None = None
    currency_name: str | None = None
    rate: Rate | None = None
    accrual_rate: AccrualRate | None = None
    fee: Fee | None = None
    limits: Limits | None = None
    settlement_milli_fen_per_point: int | None = None
    reversal_window_days: int | None = None
    active: bool | None = None

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.name is not None:
            name = self.name.strip()
            if not 1 <= len(name) <= 120:
                raise BadInput("name must be 1 to 120 characters", field="name")
            if bad := unsafe_character(name, single_line=True):
                raise BadInput(f"name must be one line without control characters ({bad})", field="name")
            doc["name"] = name
        if self.currency_name is not None:
            currency = self.currency_name.strip()
            if not 1 <= len(currency) <= 60:
                raise BadInput("currencyName must be 1 to 60 characters", field="currencyName")
            doc["currencyName"] = currency
        if self.rate is not None:
            rate = self.rate.validated()
            doc["rate"] = {"partnerPoints": rate.partner_points, "coalitionPoints": rate.coalition_points}
        if self.accrual_rate is not None:
            accrual = self.accrual_rate.validated()
            doc["accrualRate"] = {"points": accrual.points, "perFen": accrual.per_fen}
        if self.fee is not None:
            fee = self.fee.validated()
            doc["fee"] = {"basisPoints": fee.basis_points, "fixedPoints": fee.fixed}
        if self.limits is not None:
            doc["limits"] = self.limits.document()
        if self.settlement_milli_fen_per_point is not None:
            if self.settlement_milli_fen_per_point < 0:
                raise BadInput("settlementMilliFenPerPoint must not be negative", field="settlementMilliFenPerPoint")
            doc["settlementMilliFenPerPoint"] = self.settlement_milli_fen_per_point
        if self.reversal_window_days is not None:
            if not 0 <= self.reversal_window_days <= MAX_REVERSAL_WINDOW_DAYS:
                raise BadInput(
                    f"reversalWindowDays must be from 0 to {MAX_REVERSAL_WINDOW_DAYS}", field="reversalWindowDays"
                )
            doc["reversalWindowDays"] = self.reversal_window_days
        if self.active is not None:
            doc["active"] = self.active
        return doc

    def new_partner(self) -> dict[str, Any]:
        """A new partner's terms: the given ones over the defaults; name, currency and rate are required."""
        fields = self.document()
        for required in ("name", "currencyName", "rate"):
            if required not in fields:
                raise BadInput(f"{required} is required", field=required)
        return {
            "accrualRate": {"points": 1, "perFen": 100},
            "fee": {"basisPoints": 0, "fixedPoints": 0},
            "limits": Limits().document(),
            "settlementMilliFenPerPoint": 0,
            "reversalWindowDays": DEFAULT_REVERSAL_WINDOW_DAYS,
            "active": True,
            **fields,
        }


def check_partner_id(partner_id: str) -> str:
    if not PARTNER_ID.fullmatch(partner_id):
        raise BadInput("id may use letters, digits and _.:- (max 64)", field="id")
    return partner_id


def is_active(partner: Partner) -> bool:
    """The one rule: a partner acts only while active (absent means active, as before the flag existed)."""
    return bool(partner.get("active", True))


def require_active(partner: Partner) -> Partner:
    if not is_active(partner):
        raise DomainError("Partner is not active", code="PARTNER_INACTIVE")
    return partner


def rate_of(partner: Partner) -> Rate:
    return Rate(partner["rate"]["partnerPoints"], partner["rate"]["coalitionPoints"])


def fee_of(partner: Partner) -> Fee:
    fee = partner.get("fee") or {}
    return Fee(fee.get("basisPoints", 0), fee.get("fixedPoints", 0))


def accrual_of(partner: Partner) -> AccrualRate:
    accrual = partner.get("accrualRate") or {}
    return AccrualRate(accrual.get("points", 1), accrual.get("perFen", 100))


def daily_limit_of(partner: Partner, operation: str) -> int | None:
    value = (partner.get("limits") or {}).get(LIMIT_FIELDS[operation])
    return None if value is None else int(value)


def settlement_rate_of(partner: Partner) -> int:
    """Money per point (milli-fen) recorded on the operations the partner makes now."""
    return int(partner.get("settlementMilliFenPerPoint", 0))


def legacy_settlement_rate_of(partner: Partner) -> int:
    """The rate for operations made before rates were recorded on them: the partner's rate
    before its first change since (``legacyMilliFenPerPoint``), or its rate now if it never changed."""
    return int(partner.get("legacyMilliFenPerPoint", settlement_rate_of(partner)))


def reversal_window_of(partner: Partner) -> int:
    return int(partner.get("reversalWindowDays", DEFAULT_REVERSAL_WINDOW_DAYS))
