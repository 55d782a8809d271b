"""The gateway's long-lived parts, built once per process and shared by requests.

Every feature service hangs off ``Services`` as a lazily built attribute, so a
resolver, a worker, the CLI and a test all reach the same one the same way
(``services.catalog``, ``services.partners``...). The imports are local because
the feature modules import this one for their own type hints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from gateway.core.clock import Clock, SystemClock
from gateway.core.settings import Settings
from gateway.features.members import Members
from gateway.ledger import Ledger
from gateway.store.mongo import Database

if TYPE_CHECKING:
    from gateway.events.hub import Hub
    from gateway.features.admin_audit import AdminAudit
    from gateway.features.analytics import Analytics
    from gateway.features.behaviours import Behaviours
    from gateway.features.benefits import Benefits
    from gateway.features.campaigns import Campaigns
    from gateway.features.catalog import Catalog
    from gateway.features.check_in import CheckIns
    from gateway.features.coupons import Coupons
    from gateway.features.deduction import CheckoutDeductions
    from gateway.features.grants import Grants
    from gateway.features.guard import PersistedQueries, RateLimiter
    from gateway.features.imports import Importer
    from gateway.features.member_accounts import MemberAccounts
    from gateway.features.member_merge import MemberMerges
    from gateway.features.member_segments import MemberSegments
    from gateway.features.notifications import Notifications
    from gateway.features.paid_membership import PaidMemberships
    from gateway.features.partner_links import PartnerLinks
    from gateway.features.partner_operations import PartnerOperations
    from gateway.features.partner_statements import PartnerStatements
    from gateway.features.partners import Partners
    from gateway.features.purchases import Purchases
    from gateway.features.redemptions import Redemptions
    from gateway.features.segment_grants import SegmentGrants


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    jwt_secret: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.jwt_secret:
            self.jwt_secret = self.settings.resolved_jwt_secret()
        self.members = Members(self.db, self.clock)
        self.ledger = Ledger(self.db, self.clock)

    @cached_property
    def admin_audit(self) -> AdminAudit:
        from gateway.features.admin_audit import AdminAudit

        return AdminAudit(self.db, self.clock)

    @cached_property
    def member_accounts(self) -> MemberAccounts:
        from gateway.features.member_accounts import MemberAccounts

        return MemberAccounts(
            self.db, self.clock, self.ledger, self.members, self.admin_audit, self.deductions, self.redemptions
        )

    @cached_property
    def grants(self) -> Grants:
        from gateway.domain.grant_approval import GrantPolicy
        from gateway.features.grants import Grants

        policy = GrantPolicy(
            per_grant=self.settings.support_grant_limit_points,
            per_day=self.settings.support_daily_grant_limit_points,
            approval_threshold=self.settings.grant_approval_threshold_points,
            ttl=timedelta(hours=self.settings.grant_request_ttl_hours),
        )
        return Grants(self.db, self.clock, self.ledger, self.admin_audit, policy)

    @cached_property
    def member_merges(self) -> MemberMerges:
        from gateway.features.member_merge import MemberMerges

        return MemberMerges(self.db, self.clock, self.ledger, self.admin_audit)

    @cached_property
    def member_segments(self) -> MemberSegments:
        from gateway.features.member_segments import MemberSegments

        return MemberSegments(self.db, self.clock, self.settings.member_segment_window_days)

    @cached_property
    def purchases(self) -> Purchases:
        from gateway.features.purchases import Purchases

        return Purchases(self.db, self.clock, self.ledger, self.members)

    @cached_property
    def check_ins(self) -> CheckIns:
        from gateway.features.check_in import CheckIns

        return CheckIns(self.ledger)

    @cached_property
    def behaviours(self) -> Behaviours:
        from gateway.features.behaviours import Behaviours

        return Behaviours(self.ledger)

    @cached_property
    def deductions(self) -> CheckoutDeductions:
        from gateway.features.deduction import CheckoutDeductions

        return CheckoutDeductions(self.ledger, hold_minutes=self.settings.checkout_hold_minutes)

    @cached_property
    def benefits(self) -> Benefits:
        from gateway.features.benefits import Benefits

        return Benefits(self.db, self.clock, self.ledger)

    @cached_property
    def paid_memberships(self) -> PaidMemberships:
        from gateway.features.paid_membership import PaidMemberships

        return PaidMemberships(self.db, self.clock, self.ledger)

    @cached_property
    def catalog(self) -> Catalog:
        from gateway.features.catalog import Catalog

        return Catalog(self.db, self.clock)

    @cached_property
    def redemptions(self) -> Redemptions:
        from gateway.features.redemptions import Redemptions

        return Redemptions(
            self.db, self.ledger, payment_minutes=self.settings.payment_timeout_minutes, coupons=self.coupons
        )

    @cached_property
    def coupons(self) -> Coupons:
        """Code pools of virtual gifts; codes sealed under LOYALTY_COUPON_CODE_KEY."""
        from gateway.features.coupons import Coupons

        return Coupons(self.db, self.clock, self.admin_audit, self.settings.resolved_coupon_code_key())

    @cached_property
    def partners(self) -> Partners:
        from gateway.features.partners import Partners

        return Partners(self.db, self.clock)

    @cached_property
    def partner_links(self) -> PartnerLinks:
        from gateway.features.partner_links import PartnerLinks

        ttl = timedelta(seconds=self.settings.partner_link_code_ttl_seconds)
        return PartnerLinks(self.db, self.clock, self.partners, self.members, ttl)

    @cached_property
    def partner_operations(self) -> PartnerOperations:
        from gateway.features.partner_operations import PartnerOperations

        return PartnerOperations(self.db, self.clock, self.ledger)

    @cached_property
    def partner_statements(self) -> PartnerStatements:
        from gateway.features.partner_statements import PartnerStatements

        return PartnerStatements(self.db, self.partners)

    @cached_property
    def rate_limits(self) -> RateLimiter:
        from gateway.features.guard import RateLimiter

        return RateLimiter(self.db, self.clock, self.settings.rate_limits)

    @cached_property
    def persisted_queries(self) -> PersistedQueries:
        from gateway.features.guard import PersistedQueries

        return PersistedQueries(self.db, self.clock)

    @cached_property
    def notifications(self) -> Notifications:
        from gateway.features.notifications import Notifications

        topic = self.settings.kafka_notification_topic if self.settings.kafka_bootstrap_servers else None
        return Notifications(
            self.db, self.clock, max_attempts=self.settings.notification_max_attempts, kafka_topic=topic
        )

    @cached_property
    def hub(self) -> Hub:
        """The one fan-out hub of this gateway process, fed by its change-stream watcher."""
        from gateway.events.hub import Hub

        return Hub(self.settings.subscriber_queue_size)

    @cached_property
    def importer(self) -> Importer:
        """Operator CSV imports (members, gifts, grants) through the services above."""
        from gateway.features.imports import Importer

        return Importer(self.db, self.clock, self.members, self.catalog, self.ledger, self.admin_audit)

    @cached_property
    def analytics(self) -> Analytics:
        from gateway.features.analytics import Analytics

        return Analytics(self.db, self.clock)

    @cached_property
    def campaigns(self) -> Campaigns:
        from gateway.features.campaigns import Campaigns

        return Campaigns(self.db, self.clock, self.admin_audit)

    @cached_property
    def segment_grants(self) -> SegmentGrants:
        from gateway.features.segment_grants import SegmentGrants

        return SegmentGrants(
            self.db,
            self.clock,
            self.ledger,
            self.admin_audit,
            approval_threshold=self.settings.segment_grant_approval_threshold_points,
            concurrency=self.settings.job_concurrency,
        )
