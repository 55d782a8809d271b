"""Personal-data rights (PIPL, like GDPR), issue 14 §1: what an export holds, what erasure does.

**Export** ("everything about a member"): the profile as stored (less derived search keys and
locking counters), the RFM segment the operator profiled them into, and every document about them:
ledger entries, lots, holds, purchases, checkout deductions, redemption orders, partner links and
their history, partner operations, tier changes, growth events, benefit usage, notifications sent,
the account merges they took part in, and the staff actions taken on the account (role, action,
reason, time; not the staff member's name). Members they referred appear as a count: those are other people.

**Erasure** closes the account and pseudonymizes it; the books still reconcile:
- the profile keeps its id, dates, tier, spend, growth and balances; name, email, phone and
  birthday are removed (the name becomes ``ERASED_NAME``), search keys and the RFM segment go;
- points still held lapse in one ledger entry (``EXPIRE``, "account closed"): 账户注销, 积分清零;
  every earlier entry keeps its amounts, so balances still equal the ledger and the liability
  drops by an entry like any expiry;
- partner links are removed (the partner's customer refs are blanked on the link history and on
  partner operations, whose amounts stay for settlement); copies of contact details on
  notifications are blanked; unused link codes are deleted;
- kept as they are, being about money or the operator's duty to keep records: purchases (order ids
  and amounts), redemption orders, tier changes, growth events, benefit usage and the append-only
  admin audit log (its hash chain forbids edits; entries about members carry no contact details);
- refused while holds are in flight or orders are not final (``ACCOUNT_BUSY``): those need the
  account to finish. The member id itself is kept: it keys the ledger. Operators should not use a
  phone number or other personal data as a member id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

ERASED_NAME = "Erased member"
EXPORT_FORMAT = "loyalty-gateway/member-export/v1"


def erased_profile(now: datetime) -> dict[str, Any]:
    """The fields an erasure sets on the member document."""
    return {
        "displayName": ERASED_NAME,
        "email": None,
        "phone": None,
        "birthday": None,
        "search": {"name": [], "phone": None},
        "erasedAt": now,
        "profileUpdatedAt": now,
    }


def erasure_refusal(open_holds: int, unfinished_orders: int) -> str | None:
    """Why the account cannot be erased yet, or None."""
    if open_holds or unfinished_orders:
        return (
            f"The member has {open_holds} hold(s) in flight and {unfinished_orders} order(s) not yet final; "
            "fulfil or cancel them first"
        )
    return None


def plain(value: Any) -> Any:
    """Documents as JSON values: ids as strings, instants as ISO 8601."""
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))


def export_document(
    member: Mapping[str, Any],
    sections: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    referred_members: int,
    exported_at: datetime,
    hidden_member_fields: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The whole export as one JSON-able document."""
    profile = {k: v for k, v in member.items() if k not in hidden_member_fields}
    return plain(
        {
            "format": EXPORT_FORMAT,
            "memberId": member["_id"],
            "exportedAt": exported_at,
            "member": profile,
            "referredMembers": referred_members,
            **{name: list(docs) for name, docs in sections.items()},
        }
    )
