"""Delivering batches to sinks: at least once, the same batch id on every attempt, exponential
back-off with jitter that honours Retry-After, bounded attempts; a sink that keeps failing never
blocks the change log or the other sinks (each batch is its own queue message).

The worker publishes a batch per sink after it wrote rows; `deliver_changes` sends it. A batch
that could not be delivered is kept, with the reason, for `POST …/sinks/{id}/redeliver`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..change_log import ChangeLog
from ..changes import row_to_view
from ..models import ChangeView
from ..notification_queue import NotificationQueue
from ..outbound import RetryPolicy, UpstreamError, new_session, parse_retry_after, send
from ..storage import DELIVERIES_QUEUE
from .payloads import adaptive_card_messages, message_cards, webhook_body
from .record import MESSAGE_CARD, TEAMS_WORKFLOW, WEBHOOK, Sink, SinkState
from .store import MAX_BATCH_ROWS, Batch, BatchStore, SinkStore

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

SERVICE = "sink"
# One attempt is a few quick tries; the queue spaces the attempts out.
SEND_POLICY = RetryPolicy(
    max_attempts=2, base_delay=0.5, max_retry_after=5.0, connect_timeout=3.05, read_timeout=20.0
)
TEAMS_REQUESTS_PER_SECOND = 4.0  # Teams throttles a workflow URL above this


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    detail: str
    retry_after: float | None = None
    gone: bool = False


class RateLimiter:
    """At most `rate` requests a second per URL, in this process."""

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self._interval = 1.0 / rate
        self._sleep = sleep
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = defaultdict(deque)

    def wait(self, url: str) -> None:
        with self._lock:
            sent = self._sent[url]
            now = time.monotonic()
            at = max(now, (sent[-1] + self._interval) if sent else now)
            sent.append(at)
            while len(sent) > 8:
                sent.popleft()
        if at > now:
            self._sleep(at - now)


class SinkSender:
    """Sends one batch's payloads to one sink and says what the endpoint answered."""

    def __init__(self, session: requests.Session | None = None, limiter: RateLimiter | None = None) -> None:
        self._session = session or new_session()
        self._limiter = limiter or RateLimiter(TEAMS_REQUESTS_PER_SECOND)

    def send(self, sink: Sink, batch_id: str, changes: list[ChangeView], now: datetime) -> Outcome:
        try:
            if sink.type == WEBHOOK:
                return self._webhook(sink, batch_id, changes, now)
            payloads = (
                adaptive_card_messages(changes) if sink.type == TEAMS_WORKFLOW else message_cards(changes)
            )
            outcome = Outcome(True, None, "nothing to send")
            for payload in payloads:
                if sink.type == TEAMS_WORKFLOW:
                    self._limiter.wait(sink.url)
                outcome = self._post(sink, json=payload)
                if not outcome.ok:
                    return outcome
            return outcome
        except UpstreamError as error:
            return Outcome(
                False,
                error.status,
                f"HTTP {error.status}: {error.upstream_message}" if error.status else error.upstream_message,
                retry_after=error.retry_after,
                gone=error.status == 410 and sink.type == WEBHOOK,
            )

    def _webhook(self, sink: Sink, batch_id: str, changes: list[ChangeView], now: datetime) -> Outcome:
        from standardwebhooks.webhooks import Webhook

        body = webhook_body(batch_id, changes, now)
        # One signature per secret while a rotation overlaps: receivers accept either.
        signatures = " ".join(
            Webhook(secret).sign(batch_id, now, body) for secret in sink.signing_secrets(now)
        )
        headers = {
            "Content-Type": "application/json",
            "webhook-id": batch_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signatures,
        }
        return self._post(sink, data=body.encode("utf-8"), headers=headers)

    def _post(
        self,
        sink: Sink,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Outcome:
        response = send(
            self._session,
            "POST",
            sink.url,
            service=SERVICE,
            operation=f"deliver to {sink.type} sink {sink.id}",
            subscription_id=sink.subscription_id,
            json=json,
            data=data,
            headers=headers,
            policy=SEND_POLICY,
            secret_url=True,
        )
        text = response.text.strip()
        if sink.type == MESSAGE_CARD and text != "1":
            # Connector endpoints answer 200 and report errors, throttling included, in the body.
            throttled = "429" in text
            return Outcome(
                False,
                response.status_code,
                f"the connector answered {response.status_code} with {text[:200]!r}",
                retry_after=parse_retry_after(response.headers.get("Retry-After"))
                or (60.0 if throttled else None),
            )
        return Outcome(True, response.status_code, f"HTTP {response.status_code}")


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 8
    base_delay: float = 30.0  # seconds before the 2nd attempt; doubles, with jitter
    max_delay: float = 3600.0


@dataclass(frozen=True)
class SinkDelivery:
    sinks: SinkStore
    batches: BatchStore
    change_log: ChangeLog
    queue: NotificationQueue
    sender: SinkSender
    policy: DeliveryPolicy = DeliveryPolicy()
    clock: Callable[[], datetime] = utc_now

    def publish(self, scope: str, subscription_id: str, row_keys: Sequence[str]) -> int:
        """Hand the rows just written to every active sink of the scope; returns batches queued."""
        if not row_keys:
            return 0
        queued = 0
        for sink in self.sinks.of_scope(scope):
            if sink.state is not SinkState.ACTIVE:
                continue
            keys = sorted(row_keys)
            for start in range(0, len(keys), MAX_BATCH_ROWS):
                batch = Batch.of(sink.id, scope, tuple(keys[start : start + MAX_BATCH_ROWS]))
                self.batches.record(batch, self.clock())
                self.queue.put_later(batch.to_message(1), 0, queue=DELIVERIES_QUEUE)
                queued += 1
        return queued

    def deliver(self, body: str) -> str:
        """One attempt at one batch; returns what happened, for the function's log line."""
        batch, attempt = Batch.from_message(body)
        sink = self.sinks.get(batch.scope, batch.sink_id)
        if sink is None:
            return f"sink {batch.sink_id} was removed: batch {batch.id} dropped"
        if sink.state is not SinkState.ACTIVE:
            return f"sink {sink.id} is disabled ({sink.disabled_reason}): batch {batch.id} not sent"
        changes = [row_to_view(row) for row in self.change_log.rows(batch.scope, batch.rows)]
        changes = [change for change in changes if sink.wants(change.change_type.value)]
        now = self.clock()
        if not changes:
            self.batches.mark(batch, "delivered", attempt, None, now)
            return f"batch {batch.id}: no change this sink wants"
        outcome = self.sender.send(sink, batch.id, changes, now)
        if outcome.ok:
            self.batches.mark(batch, "delivered", attempt, None, now)
            self._note(sink, "delivered", outcome.detail, now)
            return (
                f"batch {batch.id} ({len(changes)} change(s)) delivered to sink {sink.id}: {outcome.detail}"
            )
        if outcome.gone:
            self.batches.mark(batch, "failed", attempt, outcome.detail, now)
            self.sinks.save(
                replace(sink, state=SinkState.DISABLED, disabled_reason="the receiver answered 410 Gone")
            )
            log.warning("sink %s of subscription %s answered 410: disabled", sink.id, sink.subscription_id)
            return f"sink {sink.id} answered 410: disabled"
        if attempt >= self.policy.max_attempts:
            self.batches.mark(batch, "failed", attempt, outcome.detail, now)
            self._note(sink, "failed", outcome.detail, now)
            log.error(
                "batch %s to sink %s of subscription %s failed %d times, kept for redelivery: %s",
                batch.id, sink.id, sink.subscription_id, attempt, outcome.detail,
            )  # fmt: skip
            return f"batch {batch.id} failed for good after {attempt} attempts: {outcome.detail}"
        delay = self._delay(attempt, outcome.retry_after)
        self.batches.mark(batch, "pending", attempt, outcome.detail, now)
        self.queue.put_later(batch.to_message(attempt + 1), int(delay), queue=DELIVERIES_QUEUE)
        return f"batch {batch.id} attempt {attempt} failed ({outcome.detail}); next in {delay:.0f}s"

    def redeliver(self, sink: Sink) -> int:
        """Queue every batch kept as failed for the sink again, from its first attempt."""
        failed = self.batches.failed(sink.id)
        for batch in failed:
            self.batches.mark(batch, "pending", 0, batch.last_error, self.clock())
            self.queue.put_later(batch.to_message(1), 0, queue=DELIVERIES_QUEUE)
        return len(failed)

    def test(self, sink: Sink, changes: list[ChangeView]) -> Outcome:
        return self.sender.send(sink, f"test_{int(time.time())}", changes, self.clock())

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.policy.max_delay, self.policy.base_delay * 2 ** (attempt - 1))
        jittered = backoff * (0.5 + random.random() / 2)
        return float(max(jittered, retry_after or 0.0))

    def _note(self, sink: Sink, status: str, detail: str, at: datetime) -> None:
        note = {"status": status, "detail": detail[:300], "at": at.isoformat(timespec="seconds")}
        self.sinks.save(replace(sink, last_delivery=note))
