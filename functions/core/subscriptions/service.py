"""Subscriptions: create, read, renew (one, or every one that is due), delete; for every source."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from ..alerts import Alerts, Condition
from ..checkpoints import Checkpoint, CheckpointStore
from ..clock import utc_now
from ..errors import Conflict, NotFound
from ..models import (
    FailureView,
    NotificationGaps,
    SinkDeliveryState,
    SubscriptionHealth,
    SubscriptionStatus,
    SubscriptionView,
    UpdateSubscriptionRequest,
    format_utc,
)
from ..read_leases import ReadLeaseStore
from ..sources.base import EXPIRY_SAFETY_MARGIN, Draft, InvalidSubscriptionRequest, SubscriptionGone
from ..storage import is_valid_key
from .record import NotificationState, SubscriptionRecord, hash_client_state, new_client_state
from .store import ListClaimed, SubscriptionStore

if TYPE_CHECKING:
    from ..sources.registry import Sources

log = logging.getLogger(__name__)


class SubscriptionNotFound(NotFound):
    def public_message(self) -> str:
        return f"no subscription {self}"


class SubscriptionConflict(Conflict):
    def __init__(self, message: str, *, existing_id: str | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


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


@dataclass(frozen=True)
class SubscriptionService:
    store: SubscriptionStore
    checkpoints: CheckpointStore
    read_leases: ReadLeaseStore
    sources: Sources
    # Asks the worker to read a subscription's changes now (after a recreate).
    request_sync: Callable[[SubscriptionRecord], None] = lambda record: None
    # No notification for this long, while the sweep finds unannounced changes: "silent".
    silent_after: timedelta = timedelta(hours=24)
    # Health alerts: recreated, renewal failing and back.
    alerts: Alerts | None = None
    clock: Callable[[], datetime] = utc_now

    def parse_request(self, body: bytes) -> Any:
        """A create request, in the model of the source it names; raises pydantic's
        ValidationError, or InvalidSubscriptionRequest for a source this service does not follow."""

        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None  # the model's own parse reports it
        return self.sources.for_request(document).request_model.model_validate_json(body)

    def create(self, request: Any) -> SubscriptionRecord:
        """Subscribe to what a create request (a source's `request_model`) names."""
        now = self.clock()
        source = self.sources[request.source]
        planned = source.draft(request, now)
        draft = replace(
            _draft(source.name, planned, now),
            ignore_changes_by=tuple(dict.fromkeys(request.ignore_changes_by)),
        )
        expiration = planned.expiration
        # Claim the scope first: of any number of concurrent creates, exactly one gets past here.
        try:
            self.store.claim_scope(draft.scope, now)
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
        subscriber = self.sources[draft.source].subscriber
        # Read the cursor before subscribing, so no change made in between is missed.
        cursor = subscriber.first_cursor(draft, self.clock())
        record = self._subscribe(draft, expiration, status=SubscriptionStatus.ACTIVE)
        try:
            self.checkpoints.start(
                record.scope,
                address=record.address,
                subscription_id=record.id,
                cursor=cursor,
                at=self.clock(),
                source=record.source,
                fields=record.fields,
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
            if source not in self.sources.names or not is_valid_key(subscription_id):
                raise InvalidSubscriptionRequest("after must be the cursor from a nextLink")
            key = (source, subscription_id)
        records, more = self.store.page(after=key, top=top)
        return records, f"{records[-1].source}:{records[-1].id}" if more and records else None

    def update(self, subscription_id: str, request: UpdateSubscriptionRequest) -> SubscriptionRecord:
        """What may change in place (who its sinks ignore); nothing is asked of the source."""
        record = self.get(subscription_id)
        names = tuple(dict.fromkeys(request.ignore_changes_by))
        try:
            updated = self.store.save_ignored(record, names)
        except ResourceNotFoundError:
            raise SubscriptionNotFound(subscription_id) from None
        log.info("subscription %s: its sinks ignore changes by %d name(s)", record.id, len(names))
        return updated

    def ignored_in(self, scope: str) -> tuple[str, ...]:
        """Who the sinks of the subscription holding `scope` ignore (nobody, if none holds it)."""
        holder = self.store.holder_of(scope)
        return holder.ignore_changes_by if holder else ()

    def delete(self, subscription_id: str) -> None:
        """Marked first, so that a renewal or a lifecycle event meeting the source's 404 while
        this runs takes it for the delete it is and does not subscribe again."""
        record = self.store.mark_deleting(self.get(subscription_id))
        self.sources[record.source].subscriber.delete(record)
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

        now = self.clock()
        due: list[SubscriptionRecord] = []
        for source in self.sources.names:
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
                elif isinstance(outcome, SubscriptionNotFound):
                    log.info("subscription %s was deleted while it was being renewed", record.id)
                elif isinstance(outcome, Exception):
                    log.error("renewing subscription %s failed: %s", record.id, outcome)
                    report.failed.append((record.id, str(outcome)))
                    if self.alerts is not None:
                        detail = (
                            f"{type(outcome).__name__}: {outcome}; it expires {format_utc(record.expiration)}"
                        )
                        self.alerts.raise_(record.id, Condition.RENEWAL_FAILED, detail)
                elif outcome.id == record.id:
                    report.renewed.append(record.id)
                    if self.alerts is not None:
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

    def renewal_due_at(self, record: SubscriptionRecord, window: timedelta) -> datetime:
        """When the subscription becomes due: less than the smaller of `window` and half its
        lifetime left (the renewal timer renews it at its next run after this)."""
        return record.expiration - min(
            window, self.sources[record.source].subscriber.max_lifetime(record) / 2
        )

    def view(self, record: SubscriptionRecord, window: timedelta) -> SubscriptionView:
        """The record as the management API shows it, with when it will be renewed."""
        due = format_utc(self.renewal_due_at(record, window))
        return self.plain_view(record).model_copy(update={"next_renewal_date_time": due})

    def plain_view(self, record: SubscriptionRecord) -> SubscriptionView:
        """The record as the API shows it: shared fields, then its source's own."""
        return SubscriptionView.model_validate(
            {
                "id": record.id,
                "source": record.source,
                "resource": record.resource,
                "changeType": record.change_type,
                "notificationUrl": record.notification_url,
                "expirationDateTime": format_utc(record.expiration),
                "status": record.status,
                "createdDateTime": format_utc(record.created),
                "lastRenewedDateTime": format_utc(record.last_renewed) if record.last_renewed else None,
                "previousId": record.previous_id,
                "title": record.title,
                "ignoreChangesBy": list(record.ignore_changes_by) or None,
                "healthSummary": {
                    "state": self._state(record),
                    "lastGapDateTime": _utc_or_none(record.health.gap_at),
                    "readsFailingSinceDateTime": _utc_or_none(record.health.failing_since),
                },
                **self.sources[record.source].view_fields(record),
            }
        )

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
        issued = self.sources[record.source].cursor_issued(checkpoint.cursor)
        return SubscriptionHealth(
            sinks=len(sinks),
            sink_states=states,
            last_notification_date_time=format_utc(last_notification) if last_notification else None,
            last_synced_date_time=format_utc(checkpoint.last_synced),
            change_token_date_time=format_utc(issued) if issued else None,
            consecutive_failures=checkpoint.consecutive_failures,
            last_failure=last_failure,
            state=self._state(record),
            notification_gaps=NotificationGaps(
                count=checkpoint.gap_count,
                last_date_time=format_utc(checkpoint.last_gap_at) if checkpoint.last_gap_at else None,
                longest_seconds=round(checkpoint.longest_gap_seconds),
            ),
        )

    def notification_state(self, checkpoint: Checkpoint, at: datetime) -> str:
        """The state at `at` of the subscription that follows the checkpoint's scope, as it is
        stored now (healthy when there is no record of it any more)."""
        record = self.store.get(checkpoint.subscription_id, checkpoint.source)
        return "healthy" if record is None else self._state(record, at)

    def note_gap(self, checkpoint: Checkpoint, at: datetime) -> str:
        """The sweep found changes no notification announced: keep it on the record's health
        summary (what every list row shows); returns the subscription's state after it."""
        record = self.store.get(checkpoint.subscription_id, checkpoint.source)
        if record is None:
            return "healthy"
        updated = self.store.update_health(
            record, lambda summary: summary.with_gap(at, checkpoint.last_notification)
        )
        return self._state(updated, at)

    def _state(self, record: SubscriptionRecord, at: datetime | None = None) -> NotificationState:
        return record.health.state(record.created, at or self.clock(), self.silent_after)

    def _renew_record(
        self, record: SubscriptionRecord, *, sync_if_recreated: bool = True
    ) -> SubscriptionRecord:
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
        if self.alerts is not None:
            detail = f"{record.source} {record.resource}: the source no longer had {record.id}"
            self.alerts.raise_(replacement.id, Condition.RECREATED, detail)
        if sync:
            self.request_sync(replacement)
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
        remote = self.sources[draft.source].subscriber.subscribe(draft, expiration, client_state)
        return replace(
            draft,
            id=remote.id,
            resource=remote.resource,
            notification_url=remote.notification_url,
            expiration=remote.expiration,
            title=remote.title or draft.title,
            client_state_hash=hash_client_state(client_state),
            status=status,
            last_renewed=last_renewed,
            previous_id=previous_id,
            etag=None,
        )

    def _latest_expiration(self, record: SubscriptionRecord, now: datetime) -> datetime:
        return now + self.sources[record.source].subscriber.max_lifetime(record) - EXPIRY_SAFETY_MARGIN


def _utc_or_none(moment: datetime | None) -> str | None:
    return format_utc(moment) if moment else None


def _draft(source: str, planned: Draft, now: datetime) -> SubscriptionRecord:
    """The record before the source has answered: what it watches, nothing it was given."""
    return SubscriptionRecord(
        id="",
        source=source,
        scope=planned.scope,
        address=planned.address,
        resource=planned.resource,
        notification_url="",
        expiration=now,
        client_state_hash="",
        status=SubscriptionStatus.ACTIVE,
        created=now,
        change_type=planned.change_type,
        fields=planned.fields,
    )
