"""One batch, or one health alert, posted to one sink through the egress sender: a Teams workflow
card (at Teams' rate), a MessageCard, or a signed webhook. It says what the receiver answered (its
status, never its body) and knows nothing of cursors, subscriptions or alerts' bookkeeping."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from standardwebhooks.webhooks import Webhook

from ..egress import DEFAULT_DEADLINE_SECONDS, EgressRefused, ReceiverUnreachable, post_to_receiver
from ..models import ChangeView
from ..outbound import parse_retry_after
from .payloads import adaptive_card_messages, alert_card, alert_headers, message_cards, webhook_body
from .rate import RateGate
from .record import AUTH_ENTRA, MESSAGE_CARD, TEAMS_WORKFLOW, WEBHOOK, Sink

if TYPE_CHECKING:
    from ..auth import TokenProvider

log = logging.getLogger(__name__)

UNREACHABLE = "the receiver could not be reached"
# Teams throttles a workflow URL above 4 requests a second, counted as they arrive. Sent exactly
# that fast, two requests that travel at different speeds arrive closer than a quarter second and
# the fifth in a second is refused: every Teams send, connector or alert, takes a slot at 80% of it.
TEAMS_REQUESTS_PER_SECOND = 4.0
TEAMS_SEND_RATE = 0.8 * TEAMS_REQUESTS_PER_SECOND
# A throttled alert waits for the receiver's Retry-After (at most this long) and goes again, at
# most ALERT_TRIES times in all; one still refused stays pending for the catch-up timer.
ALERT_TRIES = 3
MAX_ALERT_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    # Fixed phrases and status codes only: nothing of what the receiver answered.
    detail: str
    retry_after: float | None = None
    gone: bool = False
    elapsed: float = 0.0
    deadline_passed: bool = False


class SinkSender:
    """Sends one batch's payloads to one sink through the egress sender, and says what the
    receiver answered (its status, never its body)."""

    def __init__(
        self,
        *,
        allow_loopback_http: bool,
        rate_gate: RateGate | None = None,
        flow_tokens: TokenProvider | None = None,
        sleep: Callable[[float], None] = time.sleep,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    ) -> None:
        self._allow_loopback_http = allow_loopback_http
        self._deadline_seconds = deadline_seconds
        self._rate_gate = rate_gate
        self._flow_tokens = flow_tokens
        self._sleep = sleep

    def send(self, sink: Sink, message_id: str, changes: list[ChangeView], now: datetime) -> Outcome:
        if sink.type == WEBHOOK:
            return self._webhook(sink, message_id, changes, now)
        payloads = adaptive_card_messages(changes) if sink.type == TEAMS_WORKFLOW else message_cards(changes)
        outcome = Outcome(True, None, "nothing to send")
        elapsed = 0.0
        for payload in payloads:
            self._take_slot(sink)
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
        else:
            body, headers = json.dumps(alert_card(event)).encode(), {"Content-Type": "application/json"}
        self._take_slot(sink)
        outcome = self._post(sink, body, headers)
        for _ in range(ALERT_TRIES - 1):
            if outcome.status != 429:
                break
            self._sleep(min(outcome.retry_after or 1.0, MAX_ALERT_RETRY_AFTER))
            self._take_slot(sink)
            outcome = self._post(sink, body, headers)
        return outcome

    def _take_slot(self, sink: Sink) -> None:
        """Teams' rate, shared through storage with every instance sending to the same URL."""
        if sink.type == TEAMS_WORKFLOW and self._rate_gate is not None:
            self._rate_gate.wait(sink.url, TEAMS_SEND_RATE)

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
            answer = post_to_receiver(
                sink.url,
                body,
                headers,
                allow_loopback_http=self._allow_loopback_http,
                deadline_seconds=self._deadline_seconds,
            )
        except (EgressRefused, ReceiverUnreachable) as error:
            log.warning(
                "delivery to %s sink %s of subscription %s failed: %s",
                sink.type, sink.id, sink.subscription_id, error,
            )  # fmt: skip
            if isinstance(error, ReceiverUnreachable) and error.deadline_passed:
                detail = f"no answer within the {self._deadline_seconds:g} s deadline"
                return Outcome(False, None, detail, elapsed=error.elapsed, deadline_passed=True)
            elapsed = error.elapsed if isinstance(error, ReceiverUnreachable) else 0.0
            return Outcome(False, None, UNREACHABLE, elapsed=elapsed)
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
