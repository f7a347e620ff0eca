"""The connector lifecycle: add a sink to a subscription, list, send it a sample, enable, disable,
replay, rotate its secret, remove it. Each operation leaves one audit line: the sink, its masked
URL, the invocation and the outcome."""

from __future__ import annotations

import contextlib
import logging
import secrets as random_ids
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from azure.core.exceptions import ResourceNotFoundError
from pydantic import AwareDatetime, Field

from ..alerts import Condition
from ..change_log import row_to_view
from ..clock import utc_now
from ..errors import NotFound
from ..models import MAX_IGNORED, ChangeKind, IgnoredName, SinkDeliveryState, WireModel, format_utc
from ..subscriptions import SubscriptionService
from .cursor import Replay, SinkCursor
from .delivery import SinkDelivery
from .payloads import sample_changes
from .record import (
    AUTH_ENTRA,
    ROTATION_OVERLAP,
    TEAMS_WORKFLOW,
    WEBHOOK,
    InvalidSink,
    Sink,
    SinkState,
    check_secret,
    check_url,
    mask,
    new_secret,
)
from .sender import Outcome
from .store import SinkChanged, SinkStore

log = logging.getLogger(__name__)

# How many owed rows a sink's view counts before it says "at least".
LAG_ROWS = 200
# A replay reaches back at most this far (the change log keeps more, but a receiver asking for
# more than this wants a resync, not a replay).
MAX_REPLAY_RANGE = timedelta(days=31)


class SinkNotFound(NotFound):
    def public_message(self) -> str:
        return f"no sink {self}"


class CreateSinkRequest(WireModel):
    type: Literal["teams-workflow", "message-card", "webhook"]
    url: str = Field(min_length=8, max_length=2048)
    change_types: list[ChangeKind] = Field(default_factory=list, alias="changeTypes", max_length=8)
    secret: str | None = Field(default=None, max_length=200)
    auth: Literal["none", "entra"] = "none"
    ignore_changes_by: list[IgnoredName] = Field(
        default_factory=list, alias="ignoreChangesBy", max_length=MAX_IGNORED
    )


class RotateSecretRequest(WireModel):
    secret: str | None = Field(default=None, max_length=200)


class ReplayRequest(WireModel):
    since: AwareDatetime
    until: AwareDatetime | None = None


@dataclass(frozen=True)
class SinkService:
    sinks: SinkStore
    subscriptions: SubscriptionService
    delivery: SinkDelivery
    allow_loopback_http: bool = False
    clock: Callable[[], datetime] = utc_now

    def create(
        self, subscription_id: str, request: CreateSinkRequest, invocation_id: str = "-"
    ) -> tuple[Sink, str | None]:
        """The sink, and its signing secret (webhooks only): returned here and never again."""
        record = self.subscriptions.get(subscription_id)
        with _audited("create", subscription_id, invocation_id) as audit:
            audit.url = request.url
            url, _warning = check_url(request.type, request.url, allow_loopback_http=self.allow_loopback_http)
            secret = None
            if request.type == WEBHOOK:
                secret = check_secret(request.secret) if request.secret else new_secret()
            elif request.secret:
                raise InvalidSink("only webhook sinks take a secret")
            if request.auth == AUTH_ENTRA and request.type != TEAMS_WORKFLOW:
                raise InvalidSink("only teams-workflow sinks take auth 'entra' (a token for Power Automate)")
            sink = self.sinks.create(
                Sink(
                    id=f"sink_{random_ids.token_hex(8)}",
                    scope=record.scope,
                    subscription_id=record.id,
                    type=request.type,
                    url=url,
                    change_types=tuple(dict.fromkeys(kind.value for kind in request.change_types)),
                    created=self.clock(),
                    secret=secret,
                    auth=request.auth,
                    ignore_changes_by=tuple(dict.fromkeys(request.ignore_changes_by)),
                )
            )
            self.delivery.start(sink)
            audit.about(sink)
        return sink, secret

    def list(self, subscription_id: str) -> list[Sink]:
        return sorted(
            self.sinks.of_scope(self.subscriptions.get(subscription_id).scope), key=lambda s: s.created
        )

    def get(self, subscription_id: str, sink_id: str) -> Sink:
        sink = self.sinks.get(self.subscriptions.get(subscription_id).scope, sink_id)
        if sink is None:
            raise SinkNotFound(sink_id)
        return sink

    def view(self, sink: Sink) -> dict[str, object]:
        return self._view(sink, self.delivery.cursors.get(sink.scope, sink.id))

    def views(self, subscription_id: str) -> Sequence[dict[str, object]]:
        """Every sink of the subscription with its delivery and how far it is behind the change
        log: two queries, and one of at most LAG_ROWS rows per sink."""
        sinks, cursors = self._with_cursors(subscription_id)
        return [self._view(sink, cursors.get(sink.id), lag=True) for sink in sinks]

    def states(self, subscription_id: str) -> Sequence[SinkDeliveryState]:
        """Each sink's state and delivery, for the subscription's health."""
        sinks, cursors = self._with_cursors(subscription_id)
        states: list[SinkDeliveryState] = []
        for sink in sinks:
            cursor = cursors.get(sink.id)
            states.append(
                SinkDeliveryState(
                    id=sink.id,
                    type=sink.type,
                    state=sink.state.value,
                    last_delivery=(cursor.last_delivery or None) if cursor else None,
                    disabled_reason=sink.disabled_reason,
                    failing_since=format_utc(cursor.failing_since)
                    if cursor and cursor.failing_since
                    else None,
                )
            )
        return states

    def _with_cursors(self, subscription_id: str) -> tuple[Sequence[Sink], dict[str, SinkCursor]]:
        sinks = self.list(subscription_id)
        if not sinks:
            return sinks, {}
        return sinks, {cursor.sink_id: cursor for cursor in self.delivery.cursors.of_scope(sinks[0].scope)}

    def _view(self, sink: Sink, cursor: SinkCursor | None, lag: bool = False) -> dict[str, object]:
        view: dict[str, object] = {**sink.view()}
        if cursor is None:
            return view
        delivery = dict(cursor.view(self.clock()))
        if lag:
            owed = self.delivery.change_log.following(sink.scope, after=cursor.position, limit=LAG_ROWS + 1)
            delivery["owedRows"] = min(len(owed), LAG_ROWS)
            delivery["owedRowsAtLeast"] = len(owed) > LAG_ROWS
            if owed:
                delivery["oldestOwedDateTime"] = row_to_view(owed[0]).time
        view["delivery"] = delivery
        return view

    def delete_subscription(self, subscription_id: str) -> int:
        """An explicit DELETE: the subscription, then its sinks (a subscription made again for the
        same list starts with none). Only the automatic recreate after a 404 keeps them."""
        record = self.subscriptions.get(subscription_id)
        self.subscriptions.delete(subscription_id)
        return self.delete_all(record.scope)

    def delete(self, subscription_id: str, sink_id: str, invocation_id: str = "-") -> None:
        """Nothing is sent to it afterwards: a drain finds no sink and stops."""
        with _audited("delete", subscription_id, invocation_id, sink_id) as audit:
            sink = self._found(audit, subscription_id, sink_id)
            self._remove(sink)

    def delete_all(self, scope: str) -> int:
        """Every sink of a scope (an explicit DELETE of its subscription)."""
        removed = 0
        for sink in self.sinks.of_scope(scope):
            with _audited("delete", sink.subscription_id, "-") as audit:
                audit.about(sink)
                self._remove(sink)
            removed += 1
        return removed

    def _remove(self, sink: Sink) -> None:
        for _ in range(4):
            try:
                self.sinks.delete(sink)
                break
            except SinkChanged:
                fresh = self.sinks.get(sink.scope, sink.id)
                if fresh is None:
                    break
                sink = fresh
        with contextlib.suppress(ResourceNotFoundError):
            self.delivery.cursors.delete(sink.scope, sink.id)

    def send_sample(self, subscription_id: str, sink_id: str, invocation_id: str = "-") -> Outcome:
        """A sample batch with an id of its own: a de-duplicating receiver keeps every one."""
        with _audited("test", subscription_id, invocation_id, sink_id) as audit:
            sink = self._found(audit, subscription_id, sink_id)
            record = self.subscriptions.get(subscription_id)
            changes = sample_changes(record.id, record.source, record.resource, self.clock())
            message_id = f"msg_test_{random_ids.token_hex(12)}"
            outcome = self.delivery.sender.send(sink, message_id, changes, self.clock())
            audit.note(f"{outcome.detail} in {outcome.elapsed * 1000:.0f} ms")
        return outcome

    def retry_now(self, subscription_id: str, sink_id: str, invocation_id: str = "-") -> None:
        with _audited("redeliver", subscription_id, invocation_id, sink_id) as audit:
            sink = self._found(audit, subscription_id, sink_id)
            self._resume(sink, "retry")

    def enable(self, subscription_id: str, sink_id: str, invocation_id: str = "-") -> Sink:
        """Active again, from where its cursor stopped: nothing in between is lost."""
        with _audited("enable", subscription_id, invocation_id, sink_id) as audit:
            enabled = self._change(
                subscription_id,
                sink_id,
                lambda s: replace(s, state=SinkState.ACTIVE, disabled_reason=None, disabled_at=None),
            )
            audit.about(enabled)
            self._resume(enabled, "enable")
        return enabled

    def disable(self, subscription_id: str, sink_id: str, invocation_id: str = "-") -> Sink:
        with _audited("disable", subscription_id, invocation_id, sink_id) as audit:
            sink = self._found(audit, subscription_id, sink_id)
            disabled = self.delivery.disable(sink, "disabled through the management API")
            if disabled is None:
                raise SinkNotFound(sink_id)
        return disabled

    def replay(
        self, subscription_id: str, sink_id: str, request: ReplayRequest, invocation_id: str = "-"
    ) -> int:
        with _audited("replay", subscription_id, invocation_id, sink_id) as audit:
            sink = self._found(audit, subscription_id, sink_id)
            until = request.until or self.clock()
            if until < request.since:
                raise InvalidSink("until must not be before since")
            if until - request.since > MAX_REPLAY_RANGE:
                raise InvalidSink(f"a replay covers at most {MAX_REPLAY_RANGE.days} days")
            count = self._replay(sink, request.since, until)
            audit.note(f"{count} row(s) from {request.since.isoformat()} to {until.isoformat()}")
        return count

    def rotate_secret(
        self, subscription_id: str, sink_id: str, request: RotateSecretRequest, invocation_id: str = "-"
    ) -> tuple[Sink, str]:
        """A new secret; the old one keeps signing beside it for ROTATION_OVERLAP."""
        secret = check_secret(request.secret) if request.secret else new_secret()
        with _audited("rotate", subscription_id, invocation_id, sink_id) as audit:

            def rotated(sink: Sink) -> Sink:
                if sink.type != WEBHOOK:
                    raise InvalidSink("only webhook sinks have a secret")
                return replace(
                    sink,
                    secret=secret,
                    previous_secret=sink.secret,
                    previous_secret_until=self.clock() + ROTATION_OVERLAP,
                )

            sink = self._change(subscription_id, sink_id, rotated)
            audit.about(sink)
        return sink, secret

    def _resume(self, sink: Sink, why: str) -> None:
        """Forget past failures and send what is owed now (an enable, a manual retry)."""
        self.delivery.alerts.recover(sink.subscription_id, Condition.SINK_DISABLED, f"sink {sink.id}: {why}")
        cursors = self.delivery.cursors
        cursor = cursors.get(sink.scope, sink.id) or self.delivery.start(sink)
        cursors.update(cursor, lambda c: replace(c, attempts=0, failing_since=None, next_attempt_at=None))
        self.delivery.wake(sink.scope, sink.id, why)

    def _replay(self, sink: Sink, since: datetime, until: datetime) -> int:
        """Send the rows whose change time is in [since, until] again, once, oldest first; the
        work is queued. Returns how many rows the range holds."""
        cursors = self.delivery.cursors
        cursor = cursors.get(sink.scope, sink.id) or self.delivery.start(sink)
        count = self.delivery.change_log.count_between(sink.scope, since, until, through=cursor.position)
        replay = Replay(f"replay_{random_ids.token_hex(8)}", since, until, through=cursor.position)
        cursors.update(cursor, lambda c: replace(c, replay=replace(replay, through=c.position)))
        self.delivery.wake(sink.scope, sink.id, "replay")
        return count

    def _found(self, audit: _Audit, subscription_id: str, sink_id: str) -> Sink:
        sink = self.get(subscription_id, sink_id)
        audit.about(sink)
        return sink

    def _change(self, subscription_id: str, sink_id: str, change: Callable[[Sink], Sink]) -> Sink:
        """Apply `change` to the sink as stored, under its ETag, again if someone came first."""
        for _ in range(4):
            sink = self.get(subscription_id, sink_id)
            try:
                return self.sinks.replace(change(sink))
            except SinkChanged:
                continue
        raise SinkChanged(sink_id)


@dataclass
class _Audit:
    """What one audit line says: the action, the sink (masked), the invocation, the outcome."""

    action: str
    subscription_id: str
    invocation_id: str
    sink_id: str = "-"
    url: str | None = None
    details: list[str] = field(default_factory=list)

    def about(self, sink: Sink) -> None:
        self.sink_id, self.url = sink.id, sink.url

    def note(self, detail: str) -> None:
        self.details.append(detail)


@contextmanager
def _audited(action: str, subscription_id: str, invocation_id: str, sink_id: str = "-") -> Iterator[_Audit]:
    """One log line for the action, whatever its outcome."""
    audit = _Audit(action, subscription_id, invocation_id, sink_id)
    outcome = "failed"
    try:
        yield audit
        outcome = "ok"
    except (InvalidSink, SinkNotFound) as refused:
        outcome = f"refused: {refused}"
        raise
    finally:
        log.info(
            "sink audit: %s sink %s of subscription %s (%s), invocation %s: %s%s",
            action,
            audit.sink_id,
            subscription_id,
            mask(audit.url) if audit.url else "-",
            invocation_id,
            outcome,
            f" ({'; '.join(audit.details)})" if audit.details else "",
        )
