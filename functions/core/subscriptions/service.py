"""Subscriptions: create, read, renew (one, or every one that is due), delete."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from ..checkpoints import CheckpointStore
from ..models import CreateSubscriptionRequest, SubscriptionStatus
from ..sources.sharepoint import ListRef, SharePointSource, SubscriptionGone
from .record import SubscriptionRecord, hash_client_state, new_client_state
from .store import ListClaimed, SubscriptionStore

log = logging.getLogger(__name__)

MAX_LIFETIME = timedelta(days=180)
# SharePoint refuses anything past 180 days from *its* clock; stay clear of clock skew.
EXPIRY_SAFETY_MARGIN = timedelta(hours=1)


class SubscriptionNotFound(LookupError):
    pass


class SubscriptionConflict(Exception):
    def __init__(self, message: str, *, existing_id: str | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class InvalidSubscriptionRequest(ValueError):
    pass


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RenewalReport:
    renewed: list[str] = field(default_factory=list)
    recreated: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class SubscriptionService:
    store: SubscriptionStore
    checkpoints: CheckpointStore
    source: SharePointSource
    tenant_url: str
    notification_url: str
    clock: Callable[[], datetime] = utc_now

    def create(self, request: CreateSubscriptionRequest) -> SubscriptionRecord:
        target = ListRef(self._absolute_site_url(request.site_url), str(request.list_id).lower())
        expiration = self._checked_expiration(request.expiration_date_time)
        # Claim the list first: of any number of concurrent creates, exactly one gets past here.
        try:
            self.store.claim_list(target.list_id, self.clock())
        except ListClaimed as claimed:
            raise SubscriptionConflict(str(claimed), existing_id=claimed.subscription_id) from None
        try:
            record = self._create_claimed(target, expiration)
        except Exception:
            self.store.release_claim(target.list_id)
            raise
        log.info("created subscription %s for list %s on %s", record.id, record.list_id, record.site_url)
        return record

    def _create_claimed(self, target: ListRef, expiration: datetime) -> SubscriptionRecord:
        # Read the token before subscribing, so no change made in between is missed.
        change_token = self.source.current_change_token(target)
        record = self._subscribe(target, expiration, status=SubscriptionStatus.ACTIVE, created=self.clock())
        try:
            self.checkpoints.start(
                target.list_id,
                site_url=target.site_url,
                subscription_id=record.id,
                change_token=change_token,
                at=self.clock(),
            )
            self.store.save(record)
            self.store.bind_claim(target.list_id, record.id)
        except Exception as error:
            # Without a record, nothing would ever renew or delete it: take it back at SharePoint.
            log.error("storing new subscription %s failed, deleting it at SharePoint: %s", record.id, error)
            self.source.delete_subscription(target, record.id)
            raise
        return record

    def get(self, subscription_id: str) -> SubscriptionRecord:
        record = self.store.get(subscription_id)
        if record is None:
            raise SubscriptionNotFound(subscription_id)
        return record

    def list(self) -> list[SubscriptionRecord]:
        return sorted(self.store.list_all(), key=lambda r: r.created)

    def delete(self, subscription_id: str) -> None:
        record = self.get(subscription_id)
        self.source.delete_subscription(ListRef(record.site_url, record.list_id), record.id)
        self.store.delete(record.id)
        self.checkpoints.delete(record.list_id)
        self.store.release_claim(record.list_id)
        log.info("deleted subscription %s for list %s", record.id, record.list_id)

    def renew(self, subscription_id: str) -> SubscriptionRecord:
        return self._renew_record(self.get(subscription_id))

    def renew_due(self, window: timedelta) -> RenewalReport:
        """Renew every subscription that expires within `window`; one failure stops no other."""
        report = RenewalReport()
        for record in self.store.expiring_before(self.clock() + window):
            try:
                renewed = self._renew_record(record)
            except Exception as error:  # logged per subscription; the others still get renewed
                log.error("renewing subscription %s failed: %s", record.id, error)
                report.failed.append((record.id, str(error)))
                continue
            if renewed.id == record.id:
                report.renewed.append(record.id)
            else:
                report.recreated.append((record.id, renewed.id))
        return report

    def _renew_record(self, record: SubscriptionRecord) -> SubscriptionRecord:
        target = ListRef(record.site_url, record.list_id)
        now = self.clock()
        expiration = self._latest_expiration(now)
        try:
            self.source.renew_subscription(target, record.id, expiration)
        except SubscriptionGone:
            return self._recreate(record, target)
        renewed = record.renewed(expiration.replace(microsecond=0), now)
        self.store.save(renewed)
        log.info("renewed subscription %s until %s", record.id, renewed.expiration.isoformat())
        return renewed

    def _recreate(self, record: SubscriptionRecord, target: ListRef) -> SubscriptionRecord:
        """SharePoint forgot the subscription (it lapsed, or was deleted): subscribe again.

        The list's checkpoint stays where it was, so the next notification reads every change
        made while no subscription existed.
        """
        log.warning(
            "subscription %s for list %s is gone at SharePoint; creating a new one",
            record.id,
            record.list_id,
        )
        now = self.clock()
        replacement = self._subscribe(
            target,
            self._latest_expiration(now),
            status=SubscriptionStatus.RECREATED,
            created=record.created,
            last_renewed=now,
            previous_id=record.id,
        )
        self.store.save(replacement)
        self.store.bind_claim(record.list_id, replacement.id)
        self.checkpoints.follow_subscription(record.list_id, replacement.id)
        self.store.delete(record.id)
        log.info("subscription %s replaces %s", replacement.id, record.id)
        return replacement

    def _subscribe(
        self,
        target: ListRef,
        expiration: datetime,
        *,
        status: SubscriptionStatus,
        created: datetime,
        last_renewed: datetime | None = None,
        previous_id: str | None = None,
    ) -> SubscriptionRecord:
        """Subscribe at SharePoint with a fresh clientState; the record keeps only its hash."""
        client_state = new_client_state()
        remote = self.source.create_subscription(
            target,
            notification_url=self.notification_url,
            expiration=expiration,
            client_state=client_state,
        )
        return SubscriptionRecord(
            id=remote.id,
            site_url=target.site_url,
            list_id=target.list_id,
            resource=remote.resource,
            notification_url=remote.notification_url,
            expiration=remote.expiration_date_time,
            client_state_hash=hash_client_state(client_state),
            status=status,
            created=created,
            last_renewed=last_renewed,
            previous_id=previous_id,
        )

    @staticmethod
    def _latest_expiration(now: datetime) -> datetime:
        return now + MAX_LIFETIME - EXPIRY_SAFETY_MARGIN

    def _absolute_site_url(self, site_url: str) -> str:
        if site_url.startswith("/"):
            absolute = f"{self.tenant_url}{site_url}"
        else:
            absolute = site_url
            if urlsplit(absolute).netloc.lower() != urlsplit(self.tenant_url).netloc.lower():
                raise InvalidSubscriptionRequest(f"siteUrl must be a site of {self.tenant_url}")
        parts = urlsplit(absolute)
        segments = parts.path.split("/")
        if (
            parts.query
            or parts.fragment
            or any(c in parts.path for c in "'\"\\ %")
            or any(segment in (".", "..") for segment in segments)
            or "" in segments[1:-1]
        ):
            raise InvalidSubscriptionRequest("siteUrl must be a plain site path like /sites/x")
        return absolute.rstrip("/")

    def _checked_expiration(self, requested: datetime | None) -> datetime:
        now = self.clock()
        latest = self._latest_expiration(now)
        if requested is None:
            return latest
        if requested <= now:
            raise InvalidSubscriptionRequest("expirationDateTime must be in the future")
        if requested > now + MAX_LIFETIME:
            raise InvalidSubscriptionRequest(
                "expirationDateTime must be at most 180 days from now (SharePoint's limit)"
            )
        return min(requested, latest)
