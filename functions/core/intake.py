"""Notification intake: turning a webhook POST into queue messages, for any source.

Nothing here waits on Microsoft 365: the POST is answered as soon as the accepted entries are on
the queue, and the worker does the slow part. What an entry looks like, and what of it is queued,
is its source's `EntryKind`.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from .errors import BadRequest, PayloadTooLarge
from .models import NotificationEnvelope, NotificationMessage, QueuedNotification
from .sources.base import EntryKind
from .storage import StorageUnavailable
from .subscriptions import SubscriptionRecord
from .tenancy import scope_tenant

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
# A queue message is at most 64 KiB after base64 (4 bytes for every 3); keep 1 KiB spare.
MAX_MESSAGE_JSON_BYTES = (64 - 1) * 1024 * 3 // 4
# Storage reads one request may cause for ids not in the cache. A notification from SharePoint
# names a few subscriptions, nearly always cached; a request naming more unknown ones is not
# SharePoint's.
MAX_LOOKUPS_PER_REQUEST = 16
# Microsoft's notifications nest 4 deep; anything past this is refused as hostile, on every Python.
MAX_JSON_DEPTH = 32
INTAKE_STORAGE_BUDGET_SECONDS = 2.0
MAX_REMEMBERED_MISSES = 10_000
MAX_SAMPLE_IDS = 3


class BadNotificationRequest(BadRequest):
    """The body is not JSON or not `{"value": [...]}`: answered 400."""


class SubscriptionLookup(Protocol):
    def get(self, subscription_id: str, source: str | None = None) -> SubscriptionRecord | None: ...


class MessagePut(Protocol):
    """Where the intake puts its queue messages, all or none (a QueueWriter, or a test's list)."""

    def put_all(self, messages: Iterator[str]) -> int: ...


@dataclass
class IntakeResult:
    accepted: int = 0
    rejected: int = 0
    messages: int = 0
    storage_reads: int = 0
    rejections: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the whole request: counts by reason and a few sample ids (repr: they come
        from the internet and must not forge log lines)."""
        by_reason: dict[str, list[str]] = {}
        for subscription_id, reason in self.rejections:
            by_reason.setdefault(reason, []).append(subscription_id)
        rejected = "; ".join(
            f"{len(ids)} {reason} (e.g. {', '.join(repr(i[:64]) for i in ids[:MAX_SAMPLE_IDS])})"
            for reason, ids in by_reason.items()
        )
        return (
            f"{self.accepted} accepted, {self.rejected} rejected{': ' + rejected if rejected else ''}; "
            f"{self.storage_reads} subscription read(s), {self.messages} queue message(s)"
        )


class Deadline:
    """The intake's storage budget: SharePoint waits 5 s for an answer, so storage gets about 2."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ends = clock() + seconds
        self.seconds = seconds

    def check(self, what: str) -> None:
        if self._clock() > self._ends:
            raise StorageUnavailable(f"{what}: the intake's storage budget of {self.seconds:.0f}s is spent")


def receive_notifications(
    body: bytes,
    *,
    subscriptions: CachedSubscriptionLookup,
    queue: MessagePut,
    traceparent: str | None = None,
    now: datetime | None = None,
    kind: EntryKind,
    deadline: Deadline | None = None,
    tenant_id: str | None = None,
    guests: bool = False,
) -> IntakeResult:
    """Check each entry's subscription and clientState, then enqueue the accepted ones.

    `tenant_id` is the home tenant. Serving it alone, entries that name another tenant are
    refused before any storage read; serving `guests` too, an entry must name its subscription's
    own tenant (a notification from tenant A carrying B's subscription id and clientState is
    refused). Either way, refusals are counted.
    A bad entry never fails the request (SharePoint would retry all of it and put the endpoint
    on probation); storage trouble does (StorageUnavailable, so SharePoint retries later). The
    cost does not grow with how many unknown or repeated ids a request holds: ids are looked up
    once each, misses are remembered briefly, and at most MAX_LOOKUPS_PER_REQUEST uncached ids
    are read from storage; entries beyond that are rejected unread.
    """
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body is {len(body)} bytes; at most {MAX_BODY_BYTES} are accepted")
    deadline = deadline or Deadline(INTAKE_STORAGE_BUDGET_SECONDS)
    envelope = _parse_envelope(body)
    result = IntakeResult()
    parsed: list[tuple[int, Any, str]] = []
    # A burst repeats one entry many times (SharePoint sends one per change): each distinct
    # entry is parsed, checked and queued once.
    seen: dict[Any, tuple[Any, str]] = {}
    for position, raw in enumerate(envelope.value):
        key = _hashable(raw)
        known = seen.get(key) if key is not None else None
        if known is None:
            known = _parse_entry(raw, kind, None if guests else tenant_id)
            if key is not None:
                seen[key] = known
        parsed.append((position, *known))
    if kind.trust is not None:
        refusal = kind.trust(envelope.validation_tokens, [n for _, n, _ in parsed if n is not None])
        if refusal:
            # Nothing of an untrusted POST is looked up or queued; it is answered like any other.
            result.rejections = [
                (_raw_id(envelope.value[position]) or f"entry {position}", reason or refusal)
                for position, _, reason in parsed
            ]
            result.rejected = len(result.rejections)
            return result
    wanted = [n.subscription_id for _, n, _ in parsed if n is not None]
    lookup = subscriptions.lookup(wanted, max_reads=MAX_LOOKUPS_PER_REQUEST, deadline=deadline)
    result.storage_reads = lookup.reads
    received_at = now or datetime.now(UTC)
    envelope_size = _envelope_size(traceparent, kind.source)
    # Each distinct accepted entry once, with its size as queued: identical entries say nothing
    # more to the worker, which reads a scope once per message however often it is named.
    accepted: dict[str, tuple[QueuedNotification, int]] = {}
    checked: dict[int, tuple[QueuedNotification | None, str, str]] = {}
    for position, notification, reason in parsed:
        entry = None
        if notification is not None:
            if id(notification) not in checked:
                checked[id(notification)] = _check_entry(
                    notification, kind, lookup, envelope_size, tenant_id if guests else None
                )
            entry, encoded, reason = checked[id(notification)]
        if entry is None:
            subscription_id = (
                notification.subscription_id if notification else _raw_id(envelope.value[position])
            )
            result.rejections.append((subscription_id or f"entry {position}", reason))
            continue
        result.accepted += 1
        accepted.setdefault(encoded, (entry, len(encoded.encode("utf-8")) + 1))
    result.rejected = len(result.rejections)
    if accepted:
        deadline.check("putting the notifications on the queue")
        result.messages = queue.put_all(
            _messages(list(accepted.values()), received_at, traceparent, kind.source)
        )
    return result


def _hashable(raw: object) -> Any:
    """A key for an entry of plain values (every SharePoint and Graph change entry), or None."""
    if not isinstance(raw, dict):
        return None
    try:
        key = tuple(raw.items())
        hash(key)
    except TypeError:  # a nested object, such as Teams' encryptedContent
        return None
    return key


def _parse_envelope(body: bytes) -> NotificationEnvelope:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        # ValueError covers bad UTF-8, bad JSON and integers past Python's 4,300-digit limit;
        # RecursionError, thousands of nested brackets (before Python 3.13, whose parser goes
        # deeper: hence the explicit limit below, the same on every version).
        raise BadNotificationRequest(
            f"body is not JSON this service accepts: {type(error).__name__}"
        ) from None
    if _nested_deeper_than(document, MAX_JSON_DEPTH):
        raise BadNotificationRequest(
            f"body is not JSON this service accepts: nested deeper than {MAX_JSON_DEPTH}"
        )
    try:
        return NotificationEnvelope.model_validate(document)
    except ValidationError:
        raise BadNotificationRequest('body must be {"value": [...]} with at least one notification') from None


def _nested_deeper_than(document: object, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` deep (iterative: no recursion to exhaust)."""
    pending: list[tuple[object, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                pending.append((child, depth + 1))
    return False


def _parse_entry(raw: object, kind: EntryKind, tenant_id: str | None) -> tuple[Any, str]:
    """The entry in its source's model, or None and why not. With `tenant_id` (the configured
    tenant), an entry naming another tenant is refused before any storage read."""
    try:
        notification = kind.model.model_validate(raw)
    except ValidationError as error:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "entry" for e in error.errors()})
        return None, f"malformed entry ({', '.join(fields)})"
    named = getattr(notification, "tenant_id", None)
    if tenant_id and named and named.lower() != tenant_id.lower():
        return None, "another tenant's"
    reason = kind.check(notification)
    return (None, reason) if reason else (notification, "")


def _raw_id(raw: object) -> str | None:
    value = raw.get("subscriptionId") if isinstance(raw, dict) else None
    return value if isinstance(value, str) and _is_text(value) else None


def _check_entry(
    notification: Any, kind: EntryKind, lookup: LookupResult, envelope_size: int, home_tenant: str | None
) -> tuple[QueuedNotification | None, str, str]:
    """The entry as queued and its JSON, or None and why not. With `home_tenant` (serving guest
    tenants too), the entry must name the tenant its subscription belongs to."""
    if notification.subscription_id in lookup.not_read:
        return None, "", "not looked up (too many unknown subscriptions in one request)"
    record = lookup.found.get(notification.subscription_id)
    if record is None:
        return None, "", "unknown subscription"
    if home_tenant is not None:
        named = getattr(notification, "tenant_id", None)
        owner = scope_tenant(record.scope) or home_tenant
        if named is None or named.lower() != owner.lower():
            return None, "", "not its subscription's tenant"
    if not record.client_state_matches(notification.client_state):
        return None, "", "clientState does not match"
    entry = kind.queued(notification)
    encoded = entry.model_dump_json(by_alias=True, exclude_none=True)
    if envelope_size + len(encoded.encode("utf-8")) + 1 > MAX_MESSAGE_JSON_BYTES:
        return None, "", "too large for a queue message"
    return entry, encoded, ""


def _envelope_size(traceparent: str | None, source: str) -> int:
    """A message's size without its entries: the same for every request of a source (a time
    written with its microseconds is the longest it gets), so worked out once."""
    return _envelope_size_of(source, len(traceparent or ""))


@functools.lru_cache(maxsize=64)
def _envelope_size_of(source: str, traceparent_length: int) -> int:
    probe = NotificationMessage(
        source=source,
        received_at=datetime(2000, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        traceparent="0" * traceparent_length or None,
        notifications=[QueuedNotification(subscription_id="", resource="", site_url="")],
    )
    return len(probe.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8"))


def _messages(
    entries: list[tuple[QueuedNotification, int]], received_at: datetime, traceparent: str | None, source: str
) -> Iterator[str]:
    """One message per request; split only where one would pass the queue's 64 KiB limit.

    Each entry comes measured once (a 1 MiB body can hold thousands), in UTF-8 bytes.
    """
    envelope = _envelope_size(traceparent, source)
    batch: list[QueuedNotification] = []
    size = envelope
    for entry, entry_size in entries:
        if batch and size + entry_size > MAX_MESSAGE_JSON_BYTES:
            yield _encode(batch, received_at, traceparent, source)
            batch, size = [], envelope
        batch.append(entry)
        size += entry_size
    yield _encode(batch, received_at, traceparent, source)


def _encode(
    entries: list[QueuedNotification], received_at: datetime, traceparent: str | None, source: str
) -> str:
    message = NotificationMessage(
        source=source, received_at=received_at, traceparent=traceparent, notifications=entries
    )
    return message.model_dump_json(by_alias=True, exclude_none=True)


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate such as "\ud800"
        return False
    return True


@dataclass(frozen=True)
class LookupResult:
    found: dict[str, SubscriptionRecord]
    not_read: set[str]
    reads: int


class CachedSubscriptionLookup:
    """Subscription records by id, remembered per instance: hits for a few minutes, misses for
    seconds (long enough to make a flood of made-up ids cheap, short enough that a subscription
    created a moment ago on another instance is found on its first real notification)."""

    def __init__(
        self,
        store: SubscriptionLookup,
        *,
        source: str | None = None,
        ttl_seconds: float = 300.0,
        miss_ttl_seconds: float = 30.0,
    ) -> None:
        self._store = store
        self._source = source
        self._ttl = ttl_seconds
        self._miss_ttl = miss_ttl_seconds
        self._lock = threading.Lock()
        self._hits: dict[str, tuple[float, SubscriptionRecord]] = {}
        self._misses: dict[str, float] = {}

    def get(self, subscription_id: str) -> SubscriptionRecord | None:
        return self.lookup([subscription_id], max_reads=1).found.get(subscription_id)

    def preload(self, records: Iterable[SubscriptionRecord]) -> None:
        """Remember records read ahead (the host's warmup), as if each had just been looked up."""
        now = time.monotonic()
        with self._lock:
            for record in records:
                if self._source is None or record.source == self._source:
                    self._hits[record.id] = (now, record)

    def lookup(self, ids: Iterable[str], *, max_reads: int, deadline: Deadline | None = None) -> LookupResult:
        """Each distinct id once: from the cache, else from storage while `max_reads` lasts."""
        found: dict[str, SubscriptionRecord] = {}
        not_read: set[str] = set()
        reads = 0
        now = time.monotonic()
        for subscription_id in dict.fromkeys(ids):
            with self._lock:
                hit = self._hits.get(subscription_id)
                missed_at = self._misses.get(subscription_id)
            if hit and now - hit[0] < self._ttl:
                found[subscription_id] = hit[1]
                continue
            if missed_at is not None and now - missed_at < self._miss_ttl:
                continue
            if reads >= max_reads:
                not_read.add(subscription_id)
                continue
            if deadline is not None:
                deadline.check(f"reading subscription {subscription_id}")
            record = self._store.get(subscription_id, self._source)
            reads += 1
            with self._lock:
                if record is None:
                    self._misses[subscription_id] = now
                    self._forget_old_misses(now)
                else:
                    self._hits[subscription_id] = (now, record)
                    self._misses.pop(subscription_id, None)
            if record is not None:
                found[subscription_id] = record
        return LookupResult(found, not_read, reads)

    def _forget_old_misses(self, now: float) -> None:
        if len(self._misses) > MAX_REMEMBERED_MISSES:
            self._misses = {k: t for k, t in self._misses.items() if now - t < self._miss_ttl}
            if len(self._misses) > MAX_REMEMBERED_MISSES:  # a flood: keep the newest half
                newest = sorted(self._misses.items(), key=lambda kv: kv[1])[MAX_REMEMBERED_MISSES // 2 :]
                self._misses = dict(newest)
