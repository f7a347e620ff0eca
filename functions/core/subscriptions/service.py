"""Subscriptions: create, read, renew (one, or every one that is due), delete; for every source."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from ..change_tokens import parse_change_token
from ..checkpoints import CheckpointStore
from ..models import (
    CreateGraphSubscriptionRequest,
    CreateSubscriptionRequest,
    FailureView,
    SinkDeliveryState,
    SubscriptionHealth,
    SubscriptionStatus,
    SubscriptionView,
    format_utc,
)
from ..read_leases import ReadLeaseStore
from ..sources.graph import GraphResource, InvalidGraphResource
from ..sources.sharepoint import SubscriptionGone
from ..storage import is_valid_key
from .record import GRAPH, SHAREPOINT, SubscriptionRecord, graph_scope, hash_client_state, new_client_state
from .store import SOURCES, ListClaimed, SubscriptionStore
from .subscribers import EXPIRY_SAFETY_MARGIN, SHAREPOINT_MAX_LIFETIME, GraphSubscriber, Subscriber

log = logging.getLogger(__name__)

# Kept for callers that speak of SharePoint's limit by name.
MAX_LIFETIME = SHAREPOINT_MAX_LIFETIME


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


@dataclass(frozen=True)
class SubscriptionService:
    store: SubscriptionStore
    checkpoints: CheckpointStore
    read_leases: ReadLeaseStore
    subscribers: Mapping[str, Subscriber]
    tenant_url: str
    # Asks the worker to read a subscription's changes now (after a recreate).
    request_sync: Callable[[SubscriptionRecord], None] = lambda record: None
    clock: Callable[[], datetime] = utc_now

    def create(
        self, request: CreateSubscriptionRequest | CreateGraphSubscriptionRequest
    ) -> SubscriptionRecord:
        now = self.clock()
        if isinstance(request, CreateGraphSubscriptionRequest):
            try:
                resource = GraphResource.parse(request.resource)
                change_type = resource.check_change_type(request.change_type)
            except InvalidGraphResource as error:
                raise InvalidSubscriptionRequest(str(error)) from None
            draft = _draft(GRAPH, "", graph_scope(resource.path), resource.path, now, change_type=change_type)
            expiration = self._latest_expiration(draft, now)
        else:
            site_url = self.absolute_site_url(request.site_url)
            list_id = str(request.list_id).lower()
            draft = _draft(SHAREPOINT, site_url, list_id, f"{site_url}/_api/web/lists('{list_id}')", now)
            expiration = self._checked_expiration(request.expiration_date_time, now)
        # Claim the scope first: of any number of concurrent creates, exactly one gets past here.
        try:
            self.store.claim_list(draft.scope, now)
        except ListClaimed as claimed:
            raise SubscriptionConflict(str(claimed), existing_id=claimed.subscription_id) from None
        try:
            record = self._create_claimed(draft, expiration)
        except Exception:
            self.store.release_claim(draft.scope)
            raise
        log.info("created %s subscription %s for %s", record.source, record.id, record.resource)
        return record

    def _create_claimed(self, draft: SubscriptionRecord, expiration: datetime) -> SubscriptionRecord:
        subscriber = self.subscribers[draft.source]
        # Read the cursor before subscribing, so no change made in between is missed.
        cursor = subscriber.first_cursor(draft, self.clock())
        record = self._subscribe(draft, expiration, status=SubscriptionStatus.ACTIVE)
        try:
            self.checkpoints.start(
                record.scope,
                site_url=record.site_url or record.resource,
                subscription_id=record.id,
                change_token=cursor,
                at=self.clock(),
                source=record.source,
            )
            self.store.save(record)
            self.store.bind_claim(record.scope, record.id)
        except Exception as error:
            # Without a record, nothing would ever renew or delete it: take it back at the source.
            log.error("storing new subscription %s failed, deleting it at the source: %s", record.id, error)
            subscriber.delete(record)
            raise
        return record

    def get(self, subscription_id: str) -> SubscriptionRecord:
        record = self.store.get(subscription_id)
        if record is None:
            raise SubscriptionNotFound(subscription_id)
        return record

    def page(self, *, after: str = "", top: int) -> tuple[list[SubscriptionRecord], str | None]:
        """A page of subscriptions and the cursor of the next one (None on the last page). The
        cursor is `{source}:{id}` of the last record shown; anything else is refused."""
        key: tuple[str, str] | None = None
        if after:
            source, _, subscription_id = after.partition(":")
            if source not in SOURCES or not is_valid_key(subscription_id):
                raise InvalidSubscriptionRequest("after must be the cursor from a nextLink")
            key = (source, subscription_id)
        records, more = self.store.page(after=key, top=top)
        return records, f"{records[-1].source}:{records[-1].id}" if more and records else None

    def delete(self, subscription_id: str) -> None:
        record = self.get(subscription_id)
        self.subscribers[record.source].delete(record)
        self.store.delete(record)
        self.checkpoints.delete(record.scope, record.source)
        self.read_leases.delete(record.scope, record.source)
        self.store.release_claim(record.scope)
        log.info("deleted %s subscription %s for %s", record.source, record.id, record.resource)

    def renew(self, subscription_id: str) -> SubscriptionRecord:
        return self._renew_record(self.get(subscription_id))

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
        from concurrent.futures import ThreadPoolExecutor

        now = self.clock()
        due: list[SubscriptionRecord] = []
        for source in self.subscribers:
            # The widest window any of the source's resources can have; narrowed per record.
            for record in self.store.expiring_before(source, now + window):
                if self.renewal_due_at(record, window) <= now:
                    due.append(record)
        due.sort(key=lambda record: record.expiration)

        report = RenewalReport()
        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="renewal") as pool:
            for record, outcome in zip(
                due, pool.map(lambda r: self._renew_before(r, deadline), due), strict=True
            ):
                if outcome is None:
                    report.left_for_next_run.append(record.id)
                elif isinstance(outcome, Exception):
                    log.error("renewing subscription %s failed: %s", record.id, outcome)
                    report.failed.append((record.id, str(outcome)))
                elif outcome.id == record.id:
                    report.renewed.append(record.id)
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

    def renewal_due_at(self, record: SubscriptionRecord, window: timedelta) -> datetime:
        """When the subscription becomes due: less than the smaller of `window` and half its
        lifetime left (the renewal timer renews it at its next run after this)."""
        return record.expiration - min(window, self.subscribers[record.source].max_lifetime(record) / 2)

    def view(self, record: SubscriptionRecord, window: timedelta) -> SubscriptionView:
        """The record as the management API shows it, with when it will be renewed."""
        due = format_utc(self.renewal_due_at(record, window))
        return record.to_view().model_copy(update={"next_renewal_date_time": due})

    def health(self, record: SubscriptionRecord, sinks: Sequence[SinkDeliveryState]) -> SubscriptionHealth:
        """How the subscription is doing, from its list's checkpoint (one read) and its sinks."""
        states = list(sinks)
        checkpoint = self.checkpoints.read(record.scope, record.source)
        if checkpoint is None:
            return SubscriptionHealth(sinks=len(sinks), sink_states=states)
        last_failure = None
        if checkpoint.consecutive_failures and checkpoint.last_failed is not None:
            last_failure = FailureView(
                reason=checkpoint.last_failure or "", date_time=format_utc(checkpoint.last_failed)
            )
        last_notification = checkpoint.last_notification
        token_issued = None
        if record.source == SHAREPOINT:
            token_issued = format_utc(parse_change_token(checkpoint.change_token).time)
        return SubscriptionHealth(
            sinks=len(sinks),
            sink_states=states,
            last_notification_date_time=format_utc(last_notification) if last_notification else None,
            last_synced_date_time=format_utc(checkpoint.last_synced),
            change_token_date_time=token_issued,
            consecutive_failures=checkpoint.consecutive_failures,
            last_failure=last_failure,
        )

    def _renew_record(self, record: SubscriptionRecord) -> SubscriptionRecord:
        now = self.clock()
        try:
            expiration = self.subscribers[record.source].renew(record, self._latest_expiration(record, now))
        except SubscriptionGone:
            return self.recreate(record)
        renewed = record.renewed(expiration.replace(microsecond=0), now)
        self.store.save(renewed)
        log.info("renewed subscription %s until %s", record.id, renewed.expiration.isoformat())
        return renewed

    def recreate(self, record: SubscriptionRecord, *, sync: bool = True) -> SubscriptionRecord:
        """The source forgot the subscription (it lapsed, was deleted, or Graph removed it):
        subscribe again with a new clientState, keep the cursor, then read what changed.

        The cursor stays where it was, so the sync reads every change made while no subscription
        existed.
        """
        log.warning(
            "%s subscription %s for %s is gone; creating a new one", record.source, record.id, record.resource
        )
        now = self.clock()
        replacement = self._subscribe(
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
        if sync:
            self.request_sync(replacement)
        return replacement

    def handle_lifecycle(self, record: SubscriptionRecord, event: str) -> SubscriptionRecord:
        """Graph's lifecycle events; the caller reads the changes afterwards in every case.

        reauthorizationRequired: reauthorize (recreate if Graph no longer knows it);
        subscriptionRemoved: recreate; missed: nothing more than that read."""
        subscriber = self.subscribers[record.source]
        if event == "reauthorizationRequired" and isinstance(subscriber, GraphSubscriber):
            try:
                subscriber.reauthorize(record)
            except SubscriptionGone:
                return self.recreate(record, sync=False)
            log.info("reauthorized subscription %s", record.id)
        elif event == "subscriptionRemoved":
            return self.recreate(record, sync=False)
        return record

    def _subscribe(
        self,
        draft: SubscriptionRecord,
        expiration: datetime,
        *,
        status: SubscriptionStatus,
        last_renewed: datetime | None = None,
        previous_id: str | None = None,
    ) -> SubscriptionRecord:
        """Subscribe at the source with a fresh clientState; the record keeps only its hash."""
        client_state = new_client_state()
        remote = self.subscribers[draft.source].subscribe(draft, expiration, client_state)
        return replace(
            draft,
            id=remote.id,
            resource=remote.resource,
            notification_url=remote.notification_url,
            expiration=remote.expiration,
            client_state_hash=hash_client_state(client_state),
            status=status,
            last_renewed=last_renewed,
            previous_id=previous_id,
        )

    def _latest_expiration(self, record: SubscriptionRecord, now: datetime) -> datetime:
        return now + self.subscribers[record.source].max_lifetime(record) - EXPIRY_SAFETY_MARGIN

    def absolute_site_url(self, site_url: str) -> str:
        """An absolute site URL of this tenant, from a path like /sites/x or a full URL; anything
        else is refused."""
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

    def _checked_expiration(self, requested: datetime | None, now: datetime) -> datetime:
        latest = now + SHAREPOINT_MAX_LIFETIME - EXPIRY_SAFETY_MARGIN
        if requested is None:
            return latest
        if requested <= now:
            raise InvalidSubscriptionRequest("expirationDateTime must be in the future")
        if requested > now + SHAREPOINT_MAX_LIFETIME:
            raise InvalidSubscriptionRequest(
                "expirationDateTime must be at most 180 days from now (SharePoint's limit)"
            )
        return min(requested, latest)


def _draft(
    source: str, site_url: str, scope: str, resource: str, now: datetime, *, change_type: str | None = None
) -> SubscriptionRecord:
    """The record before the source has answered: what it watches, nothing it was given."""
    return SubscriptionRecord(
        id="",
        site_url=site_url,
        list_id=scope,
        resource=resource,
        notification_url="",
        expiration=now,
        client_state_hash="",
        status=SubscriptionStatus.ACTIVE,
        created=now,
        source=source,
        change_type=change_type,
    )
