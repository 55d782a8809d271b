"""What each staff role may do: one table, read by every resolver and by docs/roles.md's test.

A resolver asks for a ``Permission`` (``require_permission``), never for a role, so giving a role
more or less power is an edit of ``ROLE_PERMISSIONS`` alone. Members, partners and the payment
service act on their own behalf through their own checks (``require_member_access``, the partner
key); the permissions here are for the operator's staff and the dashboard.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.core.auth import Principal, Role, require_principal
from gateway.core.errors import Forbidden, quote


class Permission(StrEnum):
    MEMBERS_READ = "members:read"  # search and list members, read a profile and its ledger
    MEMBERS_FREEZE = "members:freeze"  # freeze and unfreeze a member
    MEMBERS_MERGE = "members:merge"  # merge two accounts, and undo a merge
    MEMBERS_PRIVACY = "members:privacy"  # PIPL: export everything about a member, erase personal data
    POINTS_ADJUST = "points:adjust"  # grant or take back points by hand (support: up to a limit)
    GRANTS_APPROVE = "grants:approve"  # approve a grant above the two-person threshold
    ORDERS_FULFIL = "orders:fulfil"  # ship, deliver and cancel redemption orders
    CATALOG_MANAGE = "catalog:manage"  # gifts, stock, coupon code pools
    CAMPAIGNS_MANAGE = "campaigns:manage"  # campaigns, segment grants
    RULES_MANAGE = "rules:manage"  # the program: tiers, earning rules, benefits
    ANALYTICS_READ = "analytics:read"  # the analytics API and the dashboard
    STATEMENTS_READ = "statements:read"  # partner statements and settlement
    LEDGER_EXPORT = "ledger:export"  # ledger exports for the books
    PARTNERS_MANAGE = "partners:manage"  # partner set-up, terms, keys, links
    NOTIFICATIONS_MANAGE = "notifications:manage"  # notification settings, webhooks, dead letters
    AUDIT_READ = "audit:read"  # the append-only admin audit log
    OPERATIONS = "operations"  # imports, backups, jobs: running the platform
    ANALYTICS_MANAGE = "analytics:manage"  # dashboard settings: cost per point, health thresholds
    SHOP_BACKEND = "shop:backend"  # the shop's backend: purchases, refunds, payments; acting for a member
    COUPONS_REVEAL = "coupons:reveal"  # see the coupon codes a member's orders gave them


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.SUPPORT: frozenset({Permission.MEMBERS_READ, Permission.POINTS_ADJUST}),
    Role.FINANCE: frozenset(
        {Permission.ANALYTICS_READ, Permission.ANALYTICS_MANAGE, Permission.STATEMENTS_READ, Permission.LEDGER_EXPORT}
    ),
    Role.WAREHOUSE: frozenset({Permission.ORDERS_FULFIL}),
    Role.MARKETING: frozenset({Permission.CATALOG_MANAGE, Permission.CAMPAIGNS_MANAGE, Permission.RULES_MANAGE}),
    Role.DASHBOARD: frozenset({Permission.ANALYTICS_READ}),
}

STAFF_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.SUPPORT, Role.FINANCE, Role.WAREHOUSE, Role.MARKETING})


def permissions_of(role: Role) -> frozenset[Permission]:
    return ROLE_PERMISSIONS.get(role, frozenset())


def allows(principal: Principal | None, permission: Permission, *alternatives: Permission) -> bool:
    """Whether the caller's role holds ``permission`` (or one of ``alternatives``)."""
    return principal is not None and not permissions_of(principal.role).isdisjoint((permission, *alternatives))


def require_permission(principal: Principal | None, permission: Permission, *alternatives: Permission) -> Principal:
    """The caller, when its role holds ``permission`` (or one of ``alternatives``); else
    UNAUTHENTICATED / FORBIDDEN."""
    who = require_principal(principal)
    wanted = (permission, *alternatives)
    if permissions_of(who.role).isdisjoint(wanted):
        raise Forbidden(f"Role {quote(who.role.value)} may not do this ({' or '.join(p.value for p in wanted)})")
    return who


def require_self_or(
    principal: Principal | None, member_id: str, permission: Permission, *alternatives: Permission
) -> Principal:
    """The member ``member_id`` acting on itself, or staff whose role holds ``permission`` (or one of
    ``alternatives``): reads ask for ``MEMBERS_READ``, acting for the member ``SHOP_BACKEND``."""
    who = require_principal(principal)
    if who.role is Role.MEMBER and who.subject == member_id:
        return who
    if permissions_of(who.role).isdisjoint((permission, *alternatives)):
        raise Forbidden("Not allowed to access this member")
    return who


def is_staff(principal: Principal | None) -> bool:
    return principal is not None and principal.role in STAFF_ROLES
