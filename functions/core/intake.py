"""Notification intake: the validation echo, and turning a webhook POST into queue messages.

Nothing here waits on SharePoint: the POST is answered as soon as the accepted entries are on
the queue, and the worker does the slow part.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from pydantic import ValidationError

from .models import NotificationEnvelope, NotificationMessage, QueuedNotification, SharePointNotification
from .subscriptions import SubscriptionRecord

log = logging.getLogger(__name__)

MAX_VALIDATION_TOKEN_LENGTH = 1024
MAX_BODY_BYTES = 1024 * 1024
# A queue message is at most 64 KiB after base64 (4 bytes for every 3); keep 1 KiB spare.
MAX_MESSAGE_JSON_BYTES = (64 - 1) * 1024 * 3 // 4


class InvalidValidationToken(ValueError):
    pass


class BadNotificationRequest(ValueError):
    """The body is not JSON or not `{"value": [...]}`: answered 400."""


class PayloadTooLarge(ValueError):
    pass


class SubscriptionLookup(Protocol):
    def get(self, subscription_id: str) -> SubscriptionRecord | None: ...


class MessageSink(Protocol):
    def put_all(self, messages: Iterator[str]) -> int: ...


def find_validation_token(params: Mapping[str, str]) -> str | None:
    """SharePoint sends `validationtoken`, Graph `validationToken`: match the name in any case."""
    for name, value in params.items():
        if name.lower() == "validationtoken":
            return value
    return None


def checked_validation_token(token: str) -> str:
    """The token is echoed into a response body: bound its size and refuse control characters."""
    if not token or len(token) > MAX_VALIDATION_TOKEN_LENGTH:
        raise InvalidValidationToken(
            f"validation token must be 1 to {MAX_VALIDATION_TOKEN_LENGTH} characters"
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in token):
        raise InvalidValidationToken("validation token must not contain control characters")
    return token


@dataclass
class IntakeResult:
    accepted: int = 0
    rejected: int = 0
    messages: int = 0
    rejections: list[tuple[str, str]] = field(default_factory=list)


def receive_notifications(
    body: bytes,
    *,
    subscriptions: SubscriptionLookup,
    queue: MessageSink,
    traceparent: str | None = None,
    now: datetime | None = None,
) -> IntakeResult:
    """Check each entry's subscription and clientState, then enqueue the accepted ones.

    A bad entry never fails the request (SharePoint would retry all of it and put the endpoint
    on probation); storage trouble does (StorageUnavailable, so SharePoint retries later).
    """
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted")
    envelope = _parse_envelope(body)
    result = IntakeResult()
    accepted: list[QueuedNotification] = []
    for position, raw in enumerate(envelope.value):
        entry, reason = _check_entry(raw, subscriptions)
        if entry is None:
            subscription_id = raw.get("subscriptionId") if isinstance(raw, dict) else None
            result.rejections.append((str(subscription_id or f"entry {position}"), reason))
            # %r: the id comes from the internet and must not forge log lines.
            log.warning("rejected notification %d for subscription %r: %s", position, subscription_id, reason)
            continue
        accepted.append(entry)
    result.accepted = len(accepted)
    result.rejected = len(result.rejections)
    if accepted:
        received_at = now or datetime.now(UTC)
        result.messages = queue.put_all(_messages(accepted, received_at, traceparent))
    return result


def _parse_envelope(body: bytes) -> NotificationEnvelope:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadNotificationRequest(f"body is not JSON: {error}") from None
    try:
        return NotificationEnvelope.model_validate(document)
    except ValidationError:
        raise BadNotificationRequest('body must be {"value": [...]} with at least one notification') from None


def _check_entry(raw: object, subscriptions: SubscriptionLookup) -> tuple[QueuedNotification | None, str]:
    try:
        notification = SharePointNotification.model_validate(raw)
    except ValidationError as error:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "entry" for e in error.errors()})
        return None, f"malformed entry ({', '.join(fields)})"
    record = subscriptions.get(notification.subscription_id)
    if record is None:
        return None, "unknown subscription"
    if not record.client_state_matches(notification.client_state):
        return None, "clientState does not match"
    return (
        QueuedNotification(
            subscription_id=notification.subscription_id,
            resource=notification.resource,
            site_url=notification.site_url,
            tenant_id=notification.tenant_id,
            web_id=notification.web_id,
        ),
        "",
    )


def _messages(
    entries: list[QueuedNotification], received_at: datetime, traceparent: str | None
) -> Iterator[str]:
    """One message per request; split only where one would pass the queue's 64 KiB limit.

    Each entry is measured once (a 1 MiB body can hold thousands), in UTF-8 bytes.
    """
    sizes = [len(e.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8")) + 1 for e in entries]
    envelope = len(_encode(entries[:1], received_at, traceparent).encode("utf-8")) - sizes[0]
    batch: list[QueuedNotification] = []
    size = envelope
    for entry, entry_size in zip(entries, sizes, strict=False):
        if batch and size + entry_size > MAX_MESSAGE_JSON_BYTES:
            yield _encode(batch, received_at, traceparent)
            batch, size = [], envelope
        batch.append(entry)
        size += entry_size
    yield _encode(batch, received_at, traceparent)


def _encode(entries: list[QueuedNotification], received_at: datetime, traceparent: str | None) -> str:
    message = NotificationMessage(received_at=received_at, traceparent=traceparent, notifications=entries)
    return message.model_dump_json(by_alias=True, exclude_none=True)


class CachedSubscriptionLookup:
    """Subscription records by id, remembered for a few minutes per instance.

    Only hits are cached: a subscription created a moment ago on another instance must not be
    turned away (a rejected notification is not retried by SharePoint).
    """

    def __init__(self, store: SubscriptionLookup, *, ttl_seconds: float = 300.0) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, SubscriptionRecord]] = {}

    def get(self, subscription_id: str) -> SubscriptionRecord | None:
        now = time.monotonic()
        with self._lock:
            cached = self._entries.get(subscription_id)
        if cached and now - cached[0] < self._ttl:
            return cached[1]
        record = self._store.get(subscription_id)
        if record is not None:
            with self._lock:
                self._entries[subscription_id] = (now, record)
        return record
