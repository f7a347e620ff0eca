"""Delivering the change log to sinks: each sink a second reader of its scope's log.

- The worker only signals that a scope has new rows (`signal`); a lost signal delays, never loses:
  the cursor says what is owed, and the catch-up timer (`catch_up`) signals any sink still owed.
- `drain` takes the cursor's lease, cuts the next batch after the position (recorded before it is
  sent, so a retry carries the same rows under the same `webhook-id`), sends it through the egress
  sender, and moves the position only after the receiver's 2xx. Rows go in log order, so each
  resource's changes arrive in order.
- A failure backs off exponentially (a receiver's Retry-After honoured, up to an hour); a sink
  failing for longer than `disable_after`, or answering 410, is disabled with the reason, its
  cursor kept: enabling it resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import secrets as random_ids
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from standardwebhooks.webhooks import Webhook

from ..alerts import Alerts, Condition
from ..change_log import ChangeLog, as_utc
from ..changes import row_to_view
from ..clock import utc_now
from ..egress import EgressRefused, ReceiverUnreachable, post_to_receiver
from ..models import ChangeView
from ..notification_queue import NotificationQueue
from ..outbound import parse_retry_after
from ..resources import DELIVERIES_QUEUE
from .cursor import CursorGone, CursorStore, InFlight, Replay, SinkCursor
from .payloads import adaptive_card_messages, alert_card, alert_headers, message_cards, webhook_body
from .rate import RateGate
from .record import AUTH_ENTRA, MESSAGE_CARD, TEAMS_WORKFLOW, WEBHOOK, Sink, SinkState
from .store import SinkChanged, SinkStore

if TYPE_CHECKING:
    from ..auth import TokenProvider

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
UNREACHABLE = "the receiver could not be reached"
TEAMS_REQUESTS_PER_SECOND = 4.0  # Teams throttles a workflow URL above this


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    # Fixed phrases and status codes only: nothing of what the receiver answered.
    detail: str
    retry_after: float | None = None
    gone: bool = False
    elapsed: float = 0.0


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


class SinkSender:
    """Sends one batch's payloads to one sink through the egress sender, and says what the
    receiver answered (its status, never its body)."""

    def __init__(
        self,
        *,
        allow_loopback_http: bool,
        rate_gate: RateGate | None = None,
        flow_tokens: TokenProvider | None = None,
    ) -> None:
        self._allow_loopback_http = allow_loopback_http
        self._rate_gate = rate_gate
        self._flow_tokens = flow_tokens

    def send(self, sink: Sink, message_id: str, changes: list[ChangeView], now: datetime) -> Outcome:
        if sink.type == WEBHOOK:
            return self._webhook(sink, message_id, changes, now)
        payloads = adaptive_card_messages(changes) if sink.type == TEAMS_WORKFLOW else message_cards(changes)
        outcome = Outcome(True, None, "nothing to send")
        elapsed = 0.0
        for payload in payloads:
            if sink.type == TEAMS_WORKFLOW and self._rate_gate is not None:
                self._rate_gate.wait(sink.url, TEAMS_REQUESTS_PER_SECOND)
            headers = {"Content-Type": "application/json"}
            if sink.auth == AUTH_ENTRA:
                headers["Authorization"] = f"Bearer {self._flow_token()}"
            outcome = self._post(sink, json.dumps(payload).encode(), headers)
            elapsed += outcome.elapsed
            if not outcome.ok:
                break
        return replace(outcome, elapsed=elapsed)

    def send_alert(self, sink: Sink, event: dict[str, Any], now: datetime) -> Outcome:
        """One health alert (functions/core/alerts.py): a card to a Teams workflow, or a signed
        event to a webhook."""
        if sink.type == WEBHOOK:
            body, headers = alert_headers(event, sink.signing_secrets(now), now)
            return self._post(sink, body, headers)
        if self._rate_gate is not None:
            self._rate_gate.wait(sink.url, TEAMS_REQUESTS_PER_SECOND)
        return self._post(sink, json.dumps(alert_card(event)).encode(), {"Content-Type": "application/json"})

    def _flow_token(self) -> str:
        if self._flow_tokens is None:
            raise ReceiverUnreachable("no token provider for Power Automate is configured")
        return self._flow_tokens.get_token()

    def _webhook(self, sink: Sink, message_id: str, changes: list[ChangeView], now: datetime) -> Outcome:

        body = webhook_body(message_id, changes, now)
        # One signature per secret while a rotation overlaps: receivers accept either.
        signatures = " ".join(
            Webhook(secret).sign(message_id, now, body) for secret in sink.signing_secrets(now)
        )
        headers = {
            "Content-Type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signatures,
        }
        return self._post(sink, body.encode("utf-8"), headers)

    def _post(self, sink: Sink, body: bytes, headers: dict[str, str]) -> Outcome:
        try:
            answer = post_to_receiver(sink.url, body, headers, allow_loopback_http=self._allow_loopback_http)
        except (EgressRefused, ReceiverUnreachable) as error:
            log.warning(
                "delivery to %s sink %s of subscription %s failed: %s",
                sink.type, sink.id, sink.subscription_id, error,
            )  # fmt: skip
            return Outcome(False, None, UNREACHABLE)
        status = answer.status
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
        if 300 <= status < 400:
            return Outcome(
                False, status, f"HTTP {status}: redirects are not followed", elapsed=answer.elapsed
            )
        if status >= 400:
            return Outcome(
                False,
                status,
                f"HTTP {status}",
                retry_after=retry_after,
                gone=status == 410,
                elapsed=answer.elapsed,
            )
        if sink.type == MESSAGE_CARD and answer.body_prefix.strip() != b"1":
            # Connector endpoints answer 200 and report errors, throttling included, in the body.
            throttled = b"429" in answer.body_prefix
            return Outcome(
                False,
                status,
                f"HTTP {status} with an error in the body" + (" (throttled)" if throttled else ""),
                retry_after=retry_after or (60.0 if throttled else None),
                elapsed=answer.elapsed,
            )
        return Outcome(True, status, f"HTTP {status}", elapsed=answer.elapsed)


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
    again."""

    after: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class SinkDelivery:
    sinks: SinkStore
    cursors: CursorStore
    change_log: ChangeLog
    queue: NotificationQueue
    sender: SinkSender
    policy: DeliveryPolicy = DeliveryPolicy()
    # Sources whose change-log keys can land behind rows already written (see `signal`).
    writing_behind: frozenset[str] = frozenset()
    # Health alerts: a sink disabled, and back.
    alerts: Alerts | None = None
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
            self._queue(Signal(scope, sink_id, "rows"))
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
        if self.alerts is not None:
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
                self._queue(Signal(cursor.scope, cursor.sink_id, "catch-up"))
                queued += 1
        return queued

    # --- one drain ----------------------------------------------------------------------------

    def drain(self, body: str, holder: str) -> str:
        """Send what the sink is owed, batch by batch, until nothing is owed, an attempt fails,
        or the budget is spent; returns what happened, for the function's log line."""
        signal = Signal.from_message(body)
        sink = self.sinks.get(signal.scope, signal.sink_id)
        if sink is None:
            return f"sink {signal.sink_id} was removed: nothing sent"
        cursor = self.cursors.get(signal.scope, signal.sink_id) or self._adopt(sink)
        if sink.state is not SinkState.ACTIVE:
            return f"sink {sink.id} is disabled ({sink.disabled_reason}): nothing sent"
        now = self.clock()
        if cursor.backing_off(now) and signal.why not in ("retry", "enable"):
            return f"sink {sink.id} backs off until {cursor.next_attempt_at}: its retry is queued"
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
        except CursorGone:
            return f"sink {sink.id} was removed: nothing sent"
        if claimed is None:
            self._queue(Signal(signal.scope, signal.sink_id, signal.why), BUSY_RECHECK_SECONDS)
            return f"sink {sink.id} is being delivered by another worker: looked at again later"
        try:
            return self._deliver_owed(sink, claimed, holder)
        except CursorGone:
            return f"sink {sink.id} was removed during delivery: nothing more sent"

    def _deliver_owed(self, sink: Sink, cursor: SinkCursor, holder: str) -> str:
        deadline = self.monotonic() + DRAIN_BUDGET_SECONDS
        sent = 0
        ahead = ReadAhead()
        # Read only once a row names who made it: a row that names no one is never left out.
        ignored: tuple[str, ...] | None = None
        while True:
            if self.monotonic() > deadline:
                self._release(cursor, holder)
                self._queue(Signal(sink.scope, sink.id, "continue"))
                return f"sink {sink.id}: {sent} batch(es) delivered; more owed, continued in a new message"
            cut = self._next_batch(sink, cursor, holder, ahead)
            if cut is None:
                self._release(cursor, holder)
                return f"sink {sink.id}: {sent} batch(es) delivered; nothing more owed"
            cursor, batch = cut
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
            if outcome.ok:
                advanced = self.cursors.update(
                    cursor,
                    partial(_acknowledged, holder=holder, inflight=batch.inflight, outcome=outcome, now=now),
                )
                if advanced is None:
                    return f"sink {sink.id}: lease lost after {sent} batch(es); the new holder goes on"
                cursor = advanced
                sent += 1
                continue
            return self._failed(sink, cursor, holder, outcome, now, sent)

    def _next_batch(
        self, sink: Sink, cursor: SinkCursor, holder: str, ahead: ReadAhead
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
            updated = self.cursors.update(cursor, partial(_held_replace, holder=holder, replay=left))
            if updated is None:
                return None
            cursor = updated
        if ahead.after != cursor.position or not ahead.rows:
            ahead.rows = self.change_log.following(sink.scope, after=cursor.position, limit=READ_AHEAD_ROWS)
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
        recorded = self.cursors.update(cursor, partial(_held_replace, holder=holder, inflight=inflight))
        return None if recorded is None else (recorded, Batch(inflight, rows))

    def _failed(
        self, sink: Sink, cursor: SinkCursor, holder: str, outcome: Outcome, now: datetime, sent: int
    ) -> str:
        failing_since = cursor.failing_since or now
        attempts = cursor.attempts + 1
        note = _note("failed", outcome, now)
        if outcome.gone or now - failing_since >= self.policy.disable_after:
            reason = (
                "the receiver answered 410 Gone"
                if outcome.gone
                else f"failing since {failing_since.isoformat(timespec='seconds')}: {outcome.detail}"
            )
            self.cursors.update(
                cursor,
                partial(
                    _let_go,
                    holder=holder,
                    attempts=attempts,
                    failing_since=failing_since,
                    last_delivery=note,
                ),
            )
            self.disable(sink, reason)
            return f"sink {sink.id} disabled: {reason}"
        delay = self._delay(attempts, outcome.retry_after)
        retry_at = now + timedelta(seconds=delay)
        self.cursors.update(
            cursor,
            partial(
                _let_go,
                holder=holder,
                attempts=attempts,
                failing_since=failing_since,
                next_attempt_at=retry_at,
                last_delivery=note,
            ),
        )
        self._queue(Signal(sink.scope, sink.id, "retry"), int(delay) + 1)
        log.warning(
            "delivery to %s sink %s of subscription %s failed (attempt %d, %s); next attempt in %ds",
            sink.type, sink.id, sink.subscription_id, attempts, outcome.detail, int(delay) + 1,
        )  # fmt: skip
        return (
            f"sink {sink.id}: {sent} batch(es) delivered, then attempt {attempts} failed "
            f"({outcome.detail}); retry in {int(delay) + 1}s"
        )

    def _release(self, cursor: SinkCursor, holder: str) -> None:
        self.cursors.update(cursor, partial(_let_go, holder=holder))

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.policy.max_delay, self.policy.base_delay * 2 ** (attempt - 1))
        jittered = backoff * (0.5 + random.random() / 2)
        asked = min(retry_after or 0.0, MAX_RETRY_AFTER.total_seconds())
        return float(max(jittered, asked))

    def _queue(self, signal: Signal, delay: int = 0) -> None:
        self.queue.put_later(signal.to_message(), delay, queue=DELIVERIES_QUEUE)

    # --- what the management API asks ----------------------------------------------------------

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

    def cursor(self, sink: Sink) -> SinkCursor | None:
        return self.cursors.get(sink.scope, sink.id)

    def forget(self, sink: Sink) -> None:

        with contextlib.suppress(ResourceNotFoundError):
            self.cursors.delete(sink.scope, sink.id)

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
            if self.alerts is not None:
                detail = f"sink {sink.id} ({sink.type}): {reason}"
                self.alerts.raise_(sink.subscription_id, Condition.SINK_DISABLED, detail)
            return disabled
        raise SinkChanged(sink.id)

    def resume(self, sink: Sink, why: str) -> None:
        """Forget past failures and send what is owed now (an enable, a manual retry)."""
        if self.alerts is not None:
            self.alerts.recover(sink.subscription_id, Condition.SINK_DISABLED, f"sink {sink.id}: {why}")
        cursor = self.cursors.get(sink.scope, sink.id)
        if cursor is None:
            cursor = self.start(sink)
        self.cursors.update(
            cursor, lambda c: replace(c, attempts=0, failing_since=None, next_attempt_at=None)
        )
        self._queue(Signal(sink.scope, sink.id, why))

    def replay(self, sink: Sink, since: datetime, until: datetime) -> int:
        """Send the rows whose change time is in [since, until] again, once, oldest first; the
        work is queued. Returns how many rows the range holds."""
        cursor = self.cursors.get(sink.scope, sink.id) or self.start(sink)
        count = self.change_log.count_between(sink.scope, since, until, through=cursor.position)
        replay = Replay(f"replay_{random_ids.token_hex(8)}", since, until, through=cursor.position)
        self.cursors.update(cursor, lambda c: replace(c, replay=replace(replay, through=c.position)))
        self._queue(Signal(sink.scope, sink.id, "replay"))
        return count

    def test(self, sink: Sink, changes: list[ChangeView]) -> Outcome:
        """A sample batch with an id of its own: a de-duplicating receiver keeps every test."""
        return self.sender.send(sink, f"msg_test_{random_ids.token_hex(12)}", changes, self.clock())


def _held_replace(cursor: SinkCursor, *, holder: str, **changes: Any) -> SinkCursor | None:
    """`changes` applied, if `holder` still holds the cursor's lease."""
    return replace(cursor, **changes) if cursor.lease_holder == holder else None


def _let_go(cursor: SinkCursor, *, holder: str, **changes: Any) -> SinkCursor | None:
    """The lease released, with `changes`, if `holder` still holds it."""
    return _held_replace(cursor, holder=holder, lease_holder=None, lease_until=None, **changes)


def _acknowledged(
    cursor: SinkCursor, *, holder: str, inflight: InFlight, outcome: Outcome, now: datetime
) -> SinkCursor | None:
    if cursor.lease_holder != holder:
        return None
    done = replace(
        cursor,
        inflight=None if cursor.inflight and cursor.inflight.id == inflight.id else cursor.inflight,
        attempts=0,
        failing_since=None,
        batches_delivered=cursor.batches_delivered + 1,
        last_delivery=_note("delivered", outcome, now),
    )
    if inflight.replay:
        if cursor.replay is not None and cursor.replay.position == inflight.start:
            return replace(done, replay=replace(cursor.replay, position=inflight.last))
        return done
    # A rewind made meanwhile stands: the rows after it are sent again.
    return replace(done, position=inflight.last) if cursor.position == inflight.start else done


def _note(status: str, outcome: Outcome, at: datetime) -> dict[str, str]:
    return {"status": status, "detail": outcome.detail, "at": at.isoformat(timespec="seconds")}
