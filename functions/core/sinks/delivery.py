"""Delivering the change log to sinks: each sink a second reader of its scope's log.

- The worker only signals that a scope has new rows (`signal`); a lost signal delays, never loses:
  the cursor says what is owed, and the catch-up timer (`catch_up`) signals any sink still owed.
- `drain` takes the cursor's lease, cuts the next batch after the position (recorded before it is
  sent, so a retry carries the same rows under the same `webhook-id`), sends it through the sink
  sender, and moves the position only past batches the receiver took with a 2xx: once per page of
  rows read (five batches), the next page read while this one is sent. Rows go in log order, so
  each resource's changes arrive in order. It returns a `DrainReport`, which the trigger logs.
- A failure backs off exponentially (a receiver's Retry-After honoured, up to an hour); a sink
  failing for longer than `disable_after`, or answering 410, is disabled with the reason, its
  cursor kept: enabling it resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from azure.core.exceptions import ResourceExistsError

from ..alerts import Alerts, Condition
from ..change_log import ChangeLog, as_utc, row_to_view
from ..clock import utc_now
from ..queue_writer import QueueWriter
from ..resources import DELIVERIES_QUEUE
from .cursor import CursorGone, CursorStore, InFlight, SinkCursor
from .record import Sink, SinkState
from .sender import Outcome, SinkSender
from .store import SinkChanged, SinkStore

log = logging.getLogger(__name__)

# Rows per batch: a webhook body of 200 changes stays well under a megabyte; cards split further.
MAX_BATCH_ROWS = 200
# Rows read from the change log at once: five batches a query (one page of a table query).
READ_AHEAD_ROWS = 5 * MAX_BATCH_ROWS
# One drain works this long, then hands over to a fresh message (one invocation stays short).
DRAIN_BUDGET_SECONDS = 40.0
# Longer than the budget plus one send's deadline: a live holder never loses its lease.
LEASE_SECONDS = 120
# A signal that finds another deliverer at work comes back after this long.
BUSY_RECHECK_SECONDS = 5
MAX_RETRY_AFTER = timedelta(hours=1)


def batch_id(sink_id: str, rows: Sequence[str], salt: str = "") -> str:
    """A batch's `webhook-id`: the same rows for the same sink are the same message on every
    attempt; other rows (or a replay, salted with its id) never share it."""
    digest = hashlib.sha256("|".join((sink_id, salt, *rows)).encode()).hexdigest()[:32]
    return f"msg_{digest}"


def key_before(key: str) -> str:
    """A position just before `key`: rows from `key` on are after it."""
    if not key:
        return ""
    return key[:-1] + chr(ord(key[-1]) - 1) + "~"


@dataclass(frozen=True)
class DeliveryPolicy:
    base_delay: float = 30.0  # seconds before the 2nd attempt; doubles, with jitter
    max_delay: float = 3600.0
    disable_after: timedelta = timedelta(hours=72)


@dataclass(frozen=True)
class Signal:
    scope: str
    sink_id: str
    why: str

    def to_message(self) -> str:
        return json.dumps({"scope": self.scope, "sinkId": self.sink_id, "why": self.why})

    @classmethod
    def from_message(cls, body: str) -> Signal:
        data = json.loads(body)
        return cls(str(data["scope"]), str(data["sinkId"]), str(data.get("why", "rows")))


@dataclass(frozen=True)
class Batch:
    inflight: InFlight
    rows: list[dict[str, Any]]


@dataclass
class ReadAhead:
    """Rows read after a sink's position and not sent yet: one query serves several batches.
    `after` is the position they follow; once the cursor is elsewhere (a rewind), they are read
    again. While a full page is sent, the page after it is read (`following`)."""

    after: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    following: tuple[str, Future[list[dict[str, Any]]]] | None = None

    def prefetched(self, position: str) -> list[dict[str, Any]] | None:
        """The page read ahead, if it follows `position`; None if there is none to use."""
        following, self.following = self.following, None
        if following is None:
            return None
        after, page = following
        if after != position:
            page.cancel()
            return None
        return page.result()


class LeaseLost(Exception):
    """Another deliverer holds the cursor now: this drain stops, and the new holder goes on."""


class Acknowledgements:
    """The acknowledgements of the full batches cut from one page of rows, written together (one
    conditional write) when the page is done, or before anything else writes the cursor: a
    failure, a batch recorded as in flight, a release. The position still moves only past
    batches the receiver took with a 2xx; after a crash, the batches of the page not yet
    acknowledged are sent again, cut the same, under the same `webhook-id`s."""

    def __init__(self, cursors: CursorStore, holder: str, cursor: SinkCursor) -> None:
        self._cursors = cursors
        self._holder = holder
        self._stored = cursor
        self._owed: list[Callable[[SinkCursor], SinkCursor | None]] = []

    def acknowledge(self, cursor: SinkCursor, inflight: InFlight, note: dict[str, str]) -> SinkCursor:
        """The cursor as it is once this batch is acknowledged; written with the page's others."""
        change = partial(SinkCursor.acknowledged, holder=self._holder, inflight=inflight, note=note)
        expected = change(cursor)
        if expected is None:  # the cursor in hand is another holder's: nothing of ours to write
            raise LeaseLost()
        self._owed.append(change)
        return expected

    def settled(self) -> SinkCursor:
        """The cursor as stored, every acknowledgement owed written first (LeaseLost if the
        lease is gone; CursorGone if the sink was removed)."""
        if self._owed:
            owed, self._owed = self._owed, []
            written = self._cursors.update(self._stored, partial(_applied, owed))
            if written is None:
                raise LeaseLost()
            self._stored = written
        return self._stored

    def written(self, cursor: SinkCursor) -> None:
        """The drain wrote the cursor itself (after settling): later writes follow from it."""
        if not self._owed:
            self._stored = cursor


def _applied(
    changes: list[Callable[[SinkCursor], SinkCursor | None]], cursor: SinkCursor
) -> SinkCursor | None:
    for change in changes:
        changed = change(cursor)
        if changed is None:
            return None
        cursor = changed
    return cursor


def _cut_without_writing(cursor: SinkCursor, ahead: ReadAhead) -> bool:
    """Whether the next batch is a full one from rows already read after the position, which is
    sent without a cursor write (see `_next_batch`)."""
    return (
        cursor.inflight is None
        and cursor.replay is None
        and ahead.after == cursor.position
        and len(ahead.rows) >= MAX_BATCH_ROWS
    )


class Drained(StrEnum):
    """How a drain ended."""

    NOTHING_OWED = "nothing more owed"
    CONTINUED = "budget spent; more owed, continued in a new message"
    FAILED = "an attempt failed; retried later"
    DISABLED_NOW = "disabled now"
    DISABLED = "disabled: nothing sent"
    BACKING_OFF = "backing off: its retry is queued"
    BUSY = "delivered by another worker: looked at again later"
    LEASE_LOST = "lease lost: the new holder goes on"
    REMOVED = "removed: nothing more sent"


@dataclass
class DrainReport:
    """What one drain did, for the trigger's one log line (like the worker's ProcessingReport)."""

    sink_id: str
    why: str
    ended: Drained = Drained.NOTHING_OWED
    batches_delivered: int = 0
    # The failed attempt's number and what the receiver answered (a status, never its body), or
    # why the sink is disabled.
    attempt: int = 0
    detail: str = ""
    retry_in_seconds: int | None = None


@dataclass(frozen=True)
class SinkDelivery:
    sinks: SinkStore
    cursors: CursorStore
    change_log: ChangeLog
    queue: QueueWriter
    sender: SinkSender
    alerts: Alerts
    policy: DeliveryPolicy = DeliveryPolicy()
    # Sources whose change-log keys can land behind rows already written (see `signal`).
    writing_behind: frozenset[str] = frozenset()
    # Who the sinks of a scope's subscription ignore (its `ignoreChangesBy`), read at most once a
    # drain.
    ignored_in: Callable[[str], tuple[str, ...]] = lambda scope: ()
    clock: Callable[[], datetime] = utc_now
    monotonic: Callable[[], float] = time.monotonic

    # --- signals ------------------------------------------------------------------------------

    def signal(self, scope: str, subscription_id: str, row_keys: Sequence[str], source: str) -> int:
        """Tell each active sink of the scope that rows were written; returns the signals queued.

        A source whose log only grows at its end (SharePoint: keys follow the change number) writes
        a row again at or before a sink's position only if the sink was already sent it. A source
        that `writes_behind` (Graph keys rows by the change's own time, and a late delta page can
        put a new row behind a position) has that position moved back to the row, so it is sent
        (with the rows after it, again)."""
        if not row_keys:
            return 0
        active = {sink.id for sink in self.sinks.of_scope(scope) if sink.state is SinkState.ACTIVE}
        rewinds = source in self.writing_behind
        cursors = self.cursors.of_scope(scope) if active and (rewinds or len(active) > 1) else []
        if rewinds:
            first = min(row_keys)
            for cursor in cursors:
                if cursor.sink_id in active and cursor.position >= first:
                    self._rewind(cursor, key_before(first))
        # Sinks that answer well first: a receiver holding its deliveries open delays no other.
        now = self.clock()
        struggling = {c.sink_id for c in cursors if c.attempts or (c.lease_until and c.lease_until > now)}
        for sink_id in sorted(active, key=lambda sink_id: (sink_id in struggling, sink_id)):
            self.wake(scope, sink_id, "rows")
        return len(active)

    def _rewind(self, cursor: SinkCursor, position: str) -> None:
        try:
            self.cursors.update(cursor, lambda c: replace(c, position=min(c.position, position)))
            log.warning(
                "sink %s: rows were written behind its position; sending from %s again",
                cursor.sink_id,
                position,
            )
        except CursorGone:
            pass

    def catch_up(self) -> int:
        """The safety net under signals: queue a drain for every active sink that is owed rows
        and that no deliverer holds or waits for. Returns the drains queued. Health alerts that
        could not be sent go again here."""
        self.alerts.deliver_pending()
        now = self.clock()
        active = {(s.scope, s.id) for s in self.sinks.all() if s.state is SinkState.ACTIVE}
        queued = 0
        for cursor in self.cursors.all():
            if (cursor.scope, cursor.sink_id) not in active or cursor.backing_off(now):
                continue
            if cursor.lease_until is not None and cursor.lease_until > now:
                continue
            owed = (
                cursor.inflight
                or cursor.replay
                or self.change_log.following(cursor.scope, after=cursor.position, limit=1)
            )
            if owed:
                self.wake(cursor.scope, cursor.sink_id, "catch-up")
                queued += 1
        return queued

    # --- one drain ----------------------------------------------------------------------------

    def drain(self, body: str, holder: str) -> DrainReport:
        """Send what the sink is owed, batch by batch, until nothing is owed, an attempt fails,
        or the budget is spent."""
        signal = Signal.from_message(body)
        report = DrainReport(signal.sink_id, signal.why)
        sink = self.sinks.get(signal.scope, signal.sink_id)
        if sink is None:
            report.ended = Drained.REMOVED
            return report
        cursor = self.cursors.get(signal.scope, signal.sink_id) or self._adopt(sink)
        if sink.state is not SinkState.ACTIVE:
            report.ended, report.detail = Drained.DISABLED, sink.disabled_reason or ""
            return report
        now = self.clock()
        if cursor.backing_off(now) and signal.why not in ("retry", "enable"):
            report.ended = Drained.BACKING_OFF
            report.detail = (
                f"until {cursor.next_attempt_at.isoformat(timespec='seconds')}"
                if cursor.next_attempt_at
                else ""
            )
            return report
        lease_until = now + timedelta(seconds=LEASE_SECONDS)
        try:
            claimed = self.cursors.update(
                cursor,
                lambda c: (
                    None
                    if c.leased_by_other(holder, now)
                    else replace(c, lease_holder=holder, lease_until=lease_until, next_attempt_at=None)
                ),
            )
            if claimed is None:
                self.wake(signal.scope, signal.sink_id, signal.why, BUSY_RECHECK_SECONDS)
                report.ended = Drained.BUSY
                return report
            self._deliver_owed(sink, claimed, holder, report)
        except CursorGone:
            report.ended = Drained.REMOVED
        return report

    def _deliver_owed(self, sink: Sink, cursor: SinkCursor, holder: str, report: DrainReport) -> None:
        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-read")
        try:
            self._deliver_pages(sink, cursor, holder, report, reader)
        except LeaseLost:
            report.ended = Drained.LEASE_LOST
        finally:
            # A page still being read is not waited for: the drain is over.
            reader.shutdown(wait=False, cancel_futures=True)

    def _deliver_pages(
        self, sink: Sink, cursor: SinkCursor, holder: str, report: DrainReport, reader: Executor
    ) -> None:
        """`cursor` is what the cursor will be once the acknowledgements owed are written: the
        page's next batch is cut from it, and the next page is read while this one is sent."""
        acks = Acknowledgements(self.cursors, holder, cursor)
        deadline = self.monotonic() + DRAIN_BUDGET_SECONDS
        ahead = ReadAhead()
        # Read only once a row names who made it: a row that names no one is never left out.
        ignored: tuple[str, ...] | None = None
        while True:
            if self.monotonic() > deadline:
                self._release(acks.settled(), holder)
                self.wake(sink.scope, sink.id, "continue")
                report.ended = Drained.CONTINUED
                return
            if not _cut_without_writing(cursor, ahead):
                cursor = acks.settled()
            cut = self._next_batch(sink, cursor, holder, ahead, reader)
            if cut is None:
                self._release(acks.settled(), holder)
                report.ended = Drained.NOTHING_OWED
                return
            cursor, batch = cut
            acks.written(cursor)
            now = self.clock()
            changes = [row_to_view(row) for row in batch.rows]
            if ignored is None and any(change.changed_by for change in changes):
                ignored = self.ignored_in(sink.scope)
            wanted = [change for change in changes if sink.wants(change, ignored or ())]
            outcome = (
                self.sender.send(sink, batch.inflight.id, wanted, now)
                if wanted
                else Outcome(True, None, "no change this sink wants")
            )
            if not outcome.ok:
                self._failed(sink, acks.settled(), holder, outcome, now, report)
                return
            cursor = acks.acknowledge(cursor, batch.inflight, _note("delivered", outcome, now))
            report.batches_delivered += 1

    def _next_batch(
        self, sink: Sink, cursor: SinkCursor, holder: str, ahead: ReadAhead, reader: Executor
    ) -> tuple[SinkCursor, Batch] | None:
        """The batch in flight, or the next one cut: a replay's rows first (they are the older),
        then the rows after the position. A batch that a retry could cut otherwise (a partial
        one, a replay's) is recorded as in flight before it is sent; a full batch after the
        position is the same rows whenever it is cut, so it needs no write."""
        if cursor.inflight is not None:
            rows = self.change_log.rows(sink.scope, cursor.inflight.rows)
            return cursor, Batch(cursor.inflight, rows)
        while cursor.replay is not None:
            replay = cursor.replay
            page, more = self.change_log.page(sink.scope, after=replay.position, top=MAX_BATCH_ROWS)
            page = [row for row in page if row["RowKey"] <= replay.through]
            rows = [row for row in page if replay.since <= as_utc(row["time"]) <= replay.until]
            if rows:
                keys = tuple(row["RowKey"] for row in rows)
                inflight = InFlight(batch_id(sink.id, keys, replay.id), keys, replay.position, replay=True)
                return self._record(cursor, holder, inflight, rows)
            done = not page or not more or page[-1]["RowKey"] >= replay.through
            position = page[-1]["RowKey"] if page else replay.position
            left = None if done else replace(replay, position=position)
            updated = self.cursors.update(cursor, partial(SinkCursor.held, holder=holder, replay=left))
            if updated is None:
                return None
            cursor = updated
        if ahead.after != cursor.position or not ahead.rows:
            prefetched = ahead.prefetched(cursor.position)
            page = (
                prefetched
                if prefetched is not None
                else self.change_log.following(sink.scope, after=cursor.position, limit=READ_AHEAD_ROWS)
            )
            ahead.rows = page
            if len(page) == READ_AHEAD_ROWS:
                last = page[-1]["RowKey"]
                following = partial(self.change_log.following, sink.scope, after=last, limit=READ_AHEAD_ROWS)
                ahead.following = (last, reader.submit(following))
        if not ahead.rows:
            return None
        rows, ahead.rows = ahead.rows[:MAX_BATCH_ROWS], ahead.rows[MAX_BATCH_ROWS:]
        keys = tuple(row["RowKey"] for row in rows)
        ahead.after = keys[-1]
        inflight = InFlight(batch_id(sink.id, keys), keys, cursor.position)
        if len(keys) == MAX_BATCH_ROWS:
            return cursor, Batch(inflight, rows)
        return self._record(cursor, holder, inflight, rows)

    def _record(
        self, cursor: SinkCursor, holder: str, inflight: InFlight, rows: list[dict[str, Any]]
    ) -> tuple[SinkCursor, Batch] | None:
        recorded = self.cursors.update(cursor, lambda c: c.held(holder, inflight=inflight))
        return None if recorded is None else (recorded, Batch(inflight, rows))

    def _failed(
        self,
        sink: Sink,
        cursor: SinkCursor,
        holder: str,
        outcome: Outcome,
        now: datetime,
        report: DrainReport,
    ) -> None:
        failing_since = cursor.failing_since or now
        attempts = cursor.attempts + 1
        note = _note("failed", outcome, now)
        report.attempt, report.detail = attempts, outcome.detail
        if outcome.gone or now - failing_since >= self.policy.disable_after:
            reason = (
                "the receiver answered 410 Gone"
                if outcome.gone
                else f"failing since {failing_since.isoformat(timespec='seconds')}: {outcome.detail}"
            )
            self.cursors.update(
                cursor,
                lambda c: c.released(
                    holder, attempts=attempts, failing_since=failing_since, last_delivery=note
                ),
            )
            self.disable(sink, reason)
            report.ended, report.detail = Drained.DISABLED_NOW, reason
            return
        delay = self._delay(attempts, outcome.retry_after)
        retry_at = now + timedelta(seconds=delay)
        # The signal comes back a second after the retry time, never before it.
        signal_delay = int(delay) + 1
        self.cursors.update(
            cursor,
            lambda c: c.released(
                holder,
                attempts=attempts,
                failing_since=failing_since,
                next_attempt_at=retry_at,
                last_delivery=note,
            ),
        )
        self.wake(sink.scope, sink.id, "retry", signal_delay)
        log.warning(
            "delivery to %s sink %s of subscription %s failed (attempt %d, %s); next attempt in %ds",
            sink.type, sink.id, sink.subscription_id, attempts, outcome.detail, signal_delay,
        )  # fmt: skip
        report.ended, report.retry_in_seconds = Drained.FAILED, signal_delay

    def _release(self, cursor: SinkCursor, holder: str) -> None:
        self.cursors.update(cursor, lambda c: c.released(holder))

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.policy.max_delay, self.policy.base_delay * 2 ** (attempt - 1))
        jittered = backoff * (0.5 + random.random() / 2)
        asked = min(retry_after or 0.0, MAX_RETRY_AFTER.total_seconds())
        return float(max(jittered, asked))

    def wake(self, scope: str, sink_id: str, why: str, delay: int = 0) -> None:
        """Queue a drain of the sink, `delay` seconds from now."""
        self.queue.put_later(Signal(scope, sink_id, why).to_message(), delay, queue=DELIVERIES_QUEUE)

    # --- cursors and state the drain and the management operations share ---------------------

    def _adopt(self, sink: Sink) -> SinkCursor:
        """A cursor for a sink made before sinks had one: it starts at the end of the log."""

        try:
            return self.start(sink)
        except ResourceExistsError:
            cursor = self.cursors.get(sink.scope, sink.id)
            if cursor is None:
                raise CursorGone(sink.id) from None
            return cursor

    def start(self, sink: Sink) -> SinkCursor:
        """A new sink's cursor: at the end of the log, so it is sent what comes after it."""
        cursor = SinkCursor(sink.scope, sink.id, position=self.change_log.last_key(sink.scope))
        self.cursors.create(cursor)
        return cursor

    def disable(self, sink: Sink, reason: str) -> Sink | None:
        """Disable the sink as it now is (a later write by anyone else is kept); None if it was
        removed meanwhile."""
        for _ in range(4):
            current = self.sinks.get(sink.scope, sink.id)
            if current is None:
                return None
            try:
                disabled = self.sinks.replace(
                    replace(
                        current, state=SinkState.DISABLED, disabled_reason=reason, disabled_at=self.clock()
                    )
                )
            except SinkChanged:
                continue
            log.warning("sink %s of subscription %s disabled: %s", sink.id, sink.subscription_id, reason)
            detail = f"sink {sink.id} ({sink.type}): {reason}"
            self.alerts.raise_(sink.subscription_id, Condition.SINK_DISABLED, detail)
            return disabled
        raise SinkChanged(sink.id)


def _note(status: str, outcome: Outcome, at: datetime) -> dict[str, str]:
    return {"status": status, "detail": outcome.detail, "at": at.isoformat(timespec="seconds")}
