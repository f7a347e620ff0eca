"""Keeping subscriptions alive: renew one, or every one that is due (the renewal timer), at each
source's own cadence; subscribe again when the source forgot one (recreate); and Graph's lifecycle
events, which come down to those two."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError

from ..alerts import Alerts, Condition
from ..checkpoints import CheckpointStore
from ..clock import utc_now
from ..models import SubscriptionStatus, format_utc
from ..sources.base import EXPIRY_SAFETY_MARGIN, SubscriptionGone
from ..tenants.directory import TenantUnavailable
from .record import SubscriptionRecord
from .service import SubscriptionNotFound, SubscriptionService
from .store import SubscriptionStore

if TYPE_CHECKING:
    from ..sources.registry import Sources

log = logging.getLogger(__name__)

# Graph: a reauthorize and a PATCH must never reach one subscription within this (2026-03).
REAUTHORIZE_SPACING = timedelta(minutes=10)
# Renewals in flight at once: each is a PATCH to SharePoint or Graph and a table write, so a few
# threads hide the round trips without crowding the outbound connection pools.
RENEWAL_CONCURRENCY = 8


@dataclass
class RenewalReport:
    renewed: list[str] = field(default_factory=list)
    recreated: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    # Due, but the run reached its deadline first: the next run takes them, soonest expiry first.
    left_for_next_run: list[str] = field(default_factory=list)
    # Due, but their tenant is not served now (revoked): renewed again once it consents.
    tenant_held: list[str] = field(default_factory=list)


def renewal_due_at(record: SubscriptionRecord, window: timedelta, sources: Sources) -> datetime:
    """When the subscription becomes due: less than the smaller of `window` and half its lifetime
    left (the renewal timer renews it at its next run after this)."""
    return record.expiration - min(window, sources[record.source].subscriber.max_lifetime(record) / 2)


@dataclass(frozen=True)
class Renewals:
    subscriptions: SubscriptionService
    checkpoints: CheckpointStore
    # Health alerts: recreated, renewal failing and back.
    alerts: Alerts
    # Asks the worker to read a subscription's changes now (after a recreate): source, id, resource.
    request_sync: Callable[[str, str, str], None]
    clock: Callable[[], datetime] = utc_now

    @property
    def store(self) -> SubscriptionStore:
        return self.subscriptions.store

    @property
    def sources(self) -> Sources:
        return self.subscriptions.sources

    def renew(self, subscription_id: str) -> SubscriptionRecord:
        return self._renew_record(self.subscriptions.get(subscription_id))

    def renew_due(
        self,
        window: timedelta,
        *,
        concurrency: int = RENEWAL_CONCURRENCY,
        deadline: datetime | None = None,
    ) -> RenewalReport:
        """Renew every subscription with less than the smaller of `window` and half its lifetime
        left (a Graph mail subscription lives 7 days, a SharePoint one 180); one failure stops no
        other.

        Up to `concurrency` renewals run at once, soonest expiry first; none starts after
        `deadline`, so a run that nears the function timeout ends cleanly and leaves the rest, in
        the report, to the next run.
        """

        now = self.clock()
        due: list[SubscriptionRecord] = []
        for source in self.sources.names:
            # The widest window any of the source's resources can have; narrowed per record.
            for record in self.store.expiring_before(source, now + window):
                if renewal_due_at(record, window, self.sources) <= now:
                    due.append(record)
        due.sort(key=lambda record: record.expiration)

        report = RenewalReport()
        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="renewal") as pool:
            for record, outcome in zip(
                due, pool.map(lambda r: self._renew_before(r, deadline), due), strict=True
            ):
                if outcome is None:
                    report.left_for_next_run.append(record.id)
                elif isinstance(outcome, SubscriptionNotFound):
                    log.info("subscription %s was deleted while it was being renewed", record.id)
                elif isinstance(outcome, TenantUnavailable):
                    log.warning("subscription %s not renewed: %s", record.id, outcome)
                    report.tenant_held.append(record.id)
                elif isinstance(outcome, Exception):
                    log.error("renewing subscription %s failed: %s", record.id, outcome)
                    report.failed.append((record.id, str(outcome)))
                    expires = format_utc(record.expiration)
                    detail = f"{type(outcome).__name__}: {outcome}; it expires {expires}"
                    self.alerts.raise_(record.id, Condition.RENEWAL_FAILED, detail)
                elif outcome.id == record.id:
                    report.renewed.append(record.id)
                    self.alerts.recover(record.id, Condition.RENEWAL_FAILED)
                else:
                    report.recreated.append((record.id, outcome.id))
        return report

    def _renew_before(
        self, record: SubscriptionRecord, deadline: datetime | None
    ) -> SubscriptionRecord | Exception | None:
        """The renewed record, the error that stopped it, or None if the deadline came first."""
        if deadline is not None and self.clock() >= deadline:
            return None
        try:
            return self._renew_record(record)
        except Exception as error:  # logged per subscription; the others still get renewed
            return error

    def _renew_record(
        self, record: SubscriptionRecord, *, sync_if_recreated: bool = True
    ) -> SubscriptionRecord:
        with self.subscriptions.tenancy.acting(record.scope):
            return self._renew_acting(record, sync_if_recreated=sync_if_recreated)

    def _renew_acting(self, record: SubscriptionRecord, *, sync_if_recreated: bool) -> SubscriptionRecord:
        now = self.clock()
        try:
            expiration = self.sources[record.source].subscriber.renew(
                record, self._latest_expiration(record, now)
            )
        except SubscriptionGone:
            return self.recreate(record, sync=sync_if_recreated)
        try:
            renewed = self.store.save_renewal(record.renewed(expiration.replace(microsecond=0), now))
        except ResourceNotFoundError:
            raise SubscriptionNotFound(record.id) from None  # deleted meanwhile: never written back
        log.info("renewed subscription %s until %s", record.id, renewed.expiration.isoformat())
        return renewed

    def recreate(self, record: SubscriptionRecord, *, sync: bool = True) -> SubscriptionRecord:
        """The source forgot the subscription (it lapsed, was deleted, or Graph removed it):
        subscribe again with a new clientState, keep the cursor, then read what changed.

        The cursor stays where it was, so the sync reads every change made while no subscription
        existed.
        """
        current = self.store.get(record.id, record.source)
        if current is None or current.status is SubscriptionStatus.DELETING:
            # Deleted through the API meanwhile: the source's 404 is that delete's doing.
            raise SubscriptionNotFound(record.id)
        log.warning(
            "%s subscription %s for %s is gone; creating a new one", record.source, record.id, record.resource
        )
        now = self.clock()
        replacement = self.subscriptions.subscribe(
            record,
            self._latest_expiration(record, now),
            status=SubscriptionStatus.RECREATED,
            last_renewed=now,
            previous_id=record.id,
        )
        self.store.save(replacement)
        self.store.bind_claim(record.scope, replacement.id)
        self.checkpoints.follow_subscription(record.scope, replacement.id, record.source)
        self.store.delete(record)
        log.info("subscription %s replaces %s", replacement.id, record.id)
        detail = f"{record.source} {record.resource}: the source no longer had {record.id}"
        self.alerts.raise_(replacement.id, Condition.RECREATED, detail)
        if sync:
            self.request_sync(replacement.source, replacement.id, replacement.resource)
        return replacement

    def handle_lifecycle(self, record: SubscriptionRecord, event: str) -> SubscriptionRecord:
        """Graph's lifecycle events; the caller reads the changes afterwards in every case.

        reauthorizationRequired: a renewing PATCH, which also reauthorizes; Graph forbids a
        reauthorize and a PATCH on one subscription within 10 minutes, so the service never sends
        the reauthorize call at all, and a challenge that finds a PATCH sent less than 10 minutes
        ago is answered by it (recreate if Graph no longer knows the subscription).
        subscriptionRemoved: recreate; missed: nothing more than that read."""
        if event == "reauthorizationRequired":
            if record.last_renewed is not None and self.clock() - record.last_renewed < REAUTHORIZE_SPACING:
                log.info(
                    "subscription %s was renewed at %s, which reauthorized it; no second call within "
                    "10 minutes",
                    record.id,
                    record.last_renewed.isoformat(),
                )
                return record
            renewed = self._renew_record(record, sync_if_recreated=False)
            log.info("reauthorized subscription %s with a renewing PATCH", record.id)
            return renewed
        if event == "subscriptionRemoved":
            return self.recreate(record, sync=False)
        return record

    def _latest_expiration(self, record: SubscriptionRecord, now: datetime) -> datetime:
        return now + self.sources[record.source].subscriber.max_lifetime(record) - EXPIRY_SAFETY_MARGIN
