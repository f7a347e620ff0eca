"""The worker: from a queue message to rows in the change log, one scope at a time.

For each subscription a message names: its lifecycle events first, then a read of its scope by
its source's reader, through the read lease (one reader per scope; notifications a read already
covers cost nothing). A read that fails leaves the cursor where it was and fails the message,
which the host retries; one throttled, or being read elsewhere, puts the message back for later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from pydantic import ValidationError

from .alerts import Alerts, Condition
from .auth import TenantRefused
from .change_log import SyncResult
from .checkpoints import CheckpointStore
from .clock import utc_now
from .failures import FailureLog
from .gaps import GapWatch
from .models import NotificationMessage
from .outbound import UpstreamError, throttled_wait
from .poison import PoisonQueue
from .queue_writer import QueueWriter
from .read_leases import Outcome, ReadCoordinator
from .sources.base import CursorRejected
from .sources.registry import Sources, UnknownSource
from .subscriptions import SubscriptionNotFound, SubscriptionRecord, SubscriptionStore
from .tenants.directory import Tenancy, TenantNotFound, TenantUnavailable

log = logging.getLogger(__name__)


class InvalidMessage(ValueError):
    """The queue message is not ours: no retry can mend it."""


class ListSyncFailed(Exception):
    """At least one list could not be read; the message is retried (checkpoints did not move)."""


@dataclass
class ProcessingReport:
    message_id: str | None = None
    traceparent: str | None = None
    lists_synced: int = 0
    changes_written: int = 0
    resyncs: int = 0
    unknown_subscriptions: list[str] = field(default_factory=list)
    lifecycle_events: list[str] = field(default_factory=list)
    sinks_signalled: int = 0
    # Lists left unread because a read that began after the notification had completed.
    covered: int = 0
    # Changes logged from the notifications themselves (Teams), and items refused (a bad signature).
    carried: int = 0
    refused_items: int = 0
    # Subscriptions not read because their tenant is not served now (revoked): the sweep reads
    # them from the same cursor once it consents again.
    tenant_held: list[str] = field(default_factory=list)
    # Subscriptions put back on the queue: throttled until the Retry-After has passed, or
    # being read by another worker until it lets go.
    deferred: list[str] = field(default_factory=list)
    deferred_seconds: int = 0
    poisoned_because: str | None = None


@dataclass
class Unfinished:
    """What a message could not finish: reads that failed (it is retried), and subscriptions to
    look at again later (it is put back)."""

    failures: list[tuple[str, Exception]] = field(default_factory=list)
    waits: dict[str, float] = field(default_factory=dict)
    retry_afters: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Worker:
    subscriptions: SubscriptionStore
    checkpoints: CheckpointStore
    sources: Sources
    # Graph's lifecycle events for a subscription; returns the record to read with (a new one
    # when the subscription had to be recreated).
    lifecycle: Callable[[SubscriptionRecord, str], SubscriptionRecord]
    queue: QueueWriter
    # Signals the scope's sinks that a sync wrote rows (scope, subscription id, row keys, source).
    publish: Callable[[str, str, Sequence[str], str], int]
    poison: PoisonQueue
    failures: FailureLog
    reads: ReadCoordinator
    # Health alerts: reads failing this many times in a row, and reading again.
    alerts: Alerts
    # A subscription's notification state (healthy, late, silent): SubscriptionViews.state.
    state_of: Callable[[SubscriptionRecord], str]
    # Changes a read the service asked for found unannounced (after a recreate).
    gaps: GapWatch
    # Whose Microsoft 365 each subscription's reads act for.
    tenancy: Tenancy
    alert_after_failed_reads: int = 5
    clock: Callable[[], datetime] = utc_now

    def process_message(self, body: str) -> ProcessingReport:
        try:
            message = known_source(parse_message(body), self.sources)
        except InvalidMessage as error:
            # Retrying cannot help: poison it now, with the reason, instead of five times later.
            self.poison.put(body)
            log.error("poisoned a queue message that is not a notification message: %s", error)
            return ProcessingReport(poisoned_because=str(error))
        report = ProcessingReport(message_id=message.id, traceparent=message.traceparent)
        try:
            self._process(message, report)
        except CursorRejected as error:
            reason = str(error)
            self.failures.record(message.id, reason, self.clock())
            self.poison.put(body)
            log.error("poisoned message %s: %s", message.id, reason)
            report.poisoned_because = reason
        except Exception as error:
            self.failures.record(message.id, f"{type(error).__name__}: {error}", self.clock())
            raise
        return report

    def _process(self, message: NotificationMessage, report: ProcessingReport) -> None:
        unfinished = Unfinished()
        read_scopes: set[str] = set()
        for subscription_id in dict.fromkeys(n.subscription_id for n in message.notifications):
            # Messages naming one subscription, handled at once by this instance, take turns
            # before any storage call: those behind a read then find it done and covering them.
            with self.reads.turn(f"{message.source}/{subscription_id}"):
                try:
                    self._process_subscription(subscription_id, message, report, unfinished, read_scopes)
                except (TenantUnavailable, TenantNotFound) as held:
                    log.warning("subscription %s not read: %s", subscription_id, held)
                    report.tenant_held.append(subscription_id)
        if unfinished.failures:
            raise ListSyncFailed(
                "; ".join(f"subscription {sid}: {error}" for sid, error in unfinished.failures)
            ) from unfinished.failures[0][1]
        if unfinished.waits:
            self._put_back(message, unfinished, report)

    def _process_subscription(
        self,
        subscription_id: str,
        message: NotificationMessage,
        report: ProcessingReport,
        unfinished: Unfinished,
        read_scopes: set[str],
    ) -> None:
        record = self.subscriptions.get(subscription_id, message.source)
        if record is None:
            log.warning("skipping notification for unknown subscription %s", subscription_id)
            report.unknown_subscriptions.append(subscription_id)
            return
        with self.tenancy.acting(record.scope):
            target = self._target(message, record, report)
            if target is None:
                return
            needs_read = self._carried(subscription_id, target, message, report)
            if needs_read and target.scope not in read_scopes:
                read_scopes.add(target.scope)
                self._read(subscription_id, target, message, report, unfinished)

    def _target(
        self, message: NotificationMessage, record: SubscriptionRecord, report: ProcessingReport
    ) -> SubscriptionRecord | None:
        """The subscription's record, after its lifecycle events (a recreate gives a new one)."""
        subscription_id = record.id
        for event in dict.fromkeys(
            n.lifecycle_event for n in message.notifications if n.subscription_id == subscription_id
        ):
            if event:
                try:
                    record = self.lifecycle(record, event)
                except SubscriptionNotFound:  # deleted through the API meanwhile
                    report.unknown_subscriptions.append(subscription_id)
                    return None
                report.lifecycle_events.append(event)
        return record

    def _carried(
        self,
        subscription_id: str,
        record: SubscriptionRecord,
        message: NotificationMessage,
        report: ProcessingReport,
    ) -> bool:
        """Log the changes the message's notifications carry (Teams); whether the scope must still
        be read (a notification with no change inside, a lifecycle event, a read asked for)."""
        carried_reader = self.sources[record.source].carried
        mine = [n for n in message.notifications if n.subscription_id == subscription_id]
        if carried_reader is None:
            return True
        carrying = [n for n in mine if n.encrypted_content is not None]
        if carrying:
            # Rows are keyed by each message's own state: a redelivery writes nothing new, so no
            # lease is needed, and a storage error fails the message for the host to retry.
            self.checkpoints.note_notification(record.scope, message.received_at, record.source)
            carried = carried_reader.write_carried(record.target, carrying)
            report.carried += carried.result.written
            report.refused_items += len(carried.refused)
            report.changes_written += carried.result.written
            report.sinks_signalled += self.publish(
                record.scope, record.id, carried.result.rows, record.source
            )
            self._note_read(record, message.received_at)
        return bool(message.requested) or len(carrying) < len(mine)

    def _read(
        self,
        subscription_id: str,
        record: SubscriptionRecord,
        message: NotificationMessage,
        report: ProcessingReport,
        unfinished: Unfinished,
    ) -> None:
        """Read the record's list or resource for the message's `subscription_id` (the record's
        own id differs after a lifecycle event recreated the subscription)."""
        if not message.requested:
            self.checkpoints.note_notification(record.scope, message.received_at, record.source)
        try:
            coalesced = self.reads.read(
                record.source,
                record.scope,
                message.received_at,
                partial(self.sync, record),
                holder=message.id,
            )
        except (CursorRejected, TenantRefused):
            raise
        except UpstreamError as error:
            if error.status in (401, 403) and not self.tenancy.still_consented():
                raise TenantUnavailable(self.tenancy.id_of(record.scope), "revoked") from None
            wait = throttled_wait(error)
            if wait is not None and error.retry_after is not None:
                # Longer than a call sleeps through, or still throttled on its last attempt: a
                # retry by the host could come back before the Retry-After has passed.
                unfinished.waits[subscription_id] = wait
                unfinished.retry_afters.append(error.retry_after)
                return
            unfinished.failures.append((record.id, error))
            self._note_failure(record, error)
            return
        except Exception as error:  # one resource failing must not stop the others
            log.error(
                "reading changes failed for subscription %s (%s): %s", record.id, record.resource, error
            )
            unfinished.failures.append((record.id, error))
            self._note_failure(record, error)
            return
        if coalesced.outcome is Outcome.COVERED:
            report.covered += 1
            return
        if coalesced.outcome is Outcome.BUSY:
            unfinished.waits[subscription_id] = coalesced.recheck_seconds
            return
        result = SyncResult.combined(coalesced.results)
        report.changes_written += result.written
        report.sinks_signalled += self.publish(record.scope, record.id, result.rows, record.source)
        report.lists_synced += 1
        report.resyncs += int(result.resynced)
        if message.requested:
            self._note_read(record, None)
            self._watch_gaps(record, result)
        else:
            self._note_read(record, message.received_at)

    def _note_failure(self, record: SubscriptionRecord, error: Exception) -> None:
        """One more failed read in a row (what the console shows; an alert after enough). Best
        effort: a storage error here must not mask the failure."""
        try:
            reason = f"{type(error).__name__}: {error}"
            now = self.clock()
            streak = self.checkpoints.record_failure(record.scope, reason, now, record.source)
            self.subscriptions.update_health(record, lambda summary: summary.read_failed(now))
            if streak >= self.alert_after_failed_reads:
                detail = f"{streak} failed reads in a row; the last: {reason}"
                self.alerts.raise_(record.id, Condition.READS_FAILING, detail)
        except Exception as unrecorded:
            log.warning("could not record the health of subscription %s: %s", record.id, unrecorded)

    def _note_read(self, record: SubscriptionRecord, notified_at: datetime | None) -> None:
        """A read completed, started by a notification received at `notified_at` (None: a read
        the service asked for itself, which says nothing of notifications). Best effort: a
        storage error here must not fail a message whose changes are kept."""
        try:
            if notified_at is not None:
                # Recorded by the read's own checkpoint write when the cursor moved; else now.
                self.checkpoints.flush_notification(record.scope, record.source)
            was_silent = self.state_of(record) == "silent"
            was_failing = record.health.failing_since is not None
            record = self.subscriptions.update_health(
                record,
                lambda summary: (
                    summary.notified(notified_at) if notified_at is not None else summary
                ).read_completed(),
            )
            # Only on a change of state: no alert read for every notification.
            if was_failing:
                self.alerts.recover(record.id, Condition.READS_FAILING)
            if was_silent and self.state_of(record) != "silent":
                self.alerts.recover(record.id, Condition.SILENT)
        except Exception as unrecorded:
            log.warning("could not record the health of subscription %s: %s", record.id, unrecorded)

    def _watch_gaps(self, record: SubscriptionRecord, result: SyncResult) -> None:
        """A read no notification started found changes: were they announced?"""
        if not result.written:
            return
        try:
            checkpoint = self.checkpoints.read(record.scope, record.source)
            if checkpoint is not None:
                self.gaps.after_read(checkpoint, result)
        except Exception as unrecorded:
            log.warning("could not look for a notification gap of %s: %s", record.id, unrecorded)

    def _put_back(
        self, message: NotificationMessage, unfinished: Unfinished, report: ProcessingReport
    ) -> None:
        """Put the message back, invisible until the longest wait has passed: after a Retry-After
        (retrying early would burn dequeues and end in poison, or meet the throttling again), or to
        look again at a list another worker is reading (so that, should that worker die, the
        notification is still read)."""
        waits = unfinished.waits
        delay = int(max(waits.values()))
        remaining = [n for n in message.notifications if n.subscription_id in waits]
        later = message.model_copy(update={"notifications": remaining})
        self.queue.put_later(later.model_dump_json(by_alias=True, exclude_none=True), delay)
        report.deferred = list(waits)
        report.deferred_seconds = delay
        why = (
            f"throttled with Retry-After up to {int(max(unfinished.retry_afters))}s"
            if unfinished.retry_afters
            else "being read by another worker"
        )
        log.warning(
            "subscription(s) %s %s: message %s put back to be read in %ds",
            ", ".join(waits),
            why,
            message.id,
            delay,
        )

    def sync(self, record: SubscriptionRecord) -> SyncResult:
        """Read the subscription's changes, from whichever source it follows."""
        return self.sources[record.source].reader.sync(record.target)


def parse_message(body: str) -> NotificationMessage:
    try:
        return NotificationMessage.model_validate_json(body)
    except ValidationError as error:
        raise InvalidMessage(f"not a notification message: {error.error_count()} problem(s)") from None


def known_source(message: NotificationMessage, sources: Sources) -> NotificationMessage:
    try:
        sources[message.source]
    except UnknownSource as error:
        raise InvalidMessage(str(error)) from None
    return message
