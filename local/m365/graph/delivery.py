"""Graph's delivery of change and lifecycle notifications: batched per URL, retried with back-off,
slowed or dropped for endpoints that answer late."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request

from ..directory import tenant_of
from .errors import bad_request
from .http import graph_of, now_of
from .model import GraphSubscription, PendingGraphNotification, graph_time
from .rules import expire_subscriptions
from .state import GraphTenant
from .teams_delivery import envelope

if TYPE_CHECKING:
    from ..tenant import Tenant

log = logging.getLogger("m365.graph")


@dataclass(frozen=True)
class DeliveryPolicy:
    """Graph's delivery as its 2026-04 page states it, with the thresholds as parameters (the docs
    have changed them before): a first attempt fails after 3 s, a retry after 10 s; more than 10%
    of the last 10 minutes' answers over 3 s makes the endpoint slow (new notifications 10 minutes
    late), more than 15% over 10 s makes it drop (notifications discarded for 10 minutes)."""

    interval: float = 1.0
    timeout: float = 3.0  # a first attempt answered later than this failed, and counts as slow
    retry_timeout: float = 10.0  # a retry's timeout; answers later than this count towards drop
    retry_base: float = 60.0  # first retry after this, doubling each time
    retry_for: float = 4 * 3600.0  # then the notification is dropped
    slow_share: float = 0.10  # over this share of answers over `timeout`: delayed by slow_delay
    drop_share: float = 0.15  # over this share over `retry_timeout`: dropped for drop_for
    slow_delay: float = 600.0
    drop_for: float = 600.0
    window: float = 600.0


def notify(
    request: Request, user_id: str, container: str, change_type: str, resource: str, item: Any
) -> None:
    graph = graph_of(request)
    now = now_of(request)
    expire_subscriptions(graph, now)
    for subscription in graph.subscriptions_on(user_id, container, change_type):
        if subscription.id in tenant_of(request).withheld:
            tenant_of(request).delivery["withheld"] += 1
            continue
        entry: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": graph_time(subscription.expiration),
            "changeType": "updated" if subscription.kind == "driveItem" else change_type,
            "resource": resource,
            "tenantId": graph.tenant_id,
            "clientState": subscription.client_state,
        }
        if item is not None:  # drive notifications carry no item: follow up with delta
            entry["resourceData"] = {
                "@odata.type": f"#Microsoft.Graph.{'Message' if item.kind == 'message' else 'Event'}",
                "@odata.id": resource,
                "@odata.etag": f'W/"{item.version}"',
                "id": item.id,
            }
        delay = graph.notification_delays.get(subscription.id, graph.notification_delays.get("*", 0.0))
        due = time.monotonic() + delay if delay else 0.0
        graph.pending.append(
            PendingGraphNotification(subscription.id, subscription.notification_url, entry, due)
        )


def lifecycle(graph: GraphTenant, subscription: GraphSubscription, event: str) -> dict[str, Any]:
    """Apply a lifecycle event to the subscription; the notification Graph sends for it."""
    allowed = {"driveItem": {"reauthorizationRequired"}}.get(
        subscription.kind, {"reauthorizationRequired", "subscriptionRemoved", "missed"}
    )
    if event not in allowed:
        raise bad_request(
            f"{subscription.kind} subscriptions get no '{event}' lifecycle events.", "InvalidRequest"
        )
    entry = {
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": graph_time(subscription.expiration),
        "tenantId": graph.tenant_id,
        "clientState": subscription.client_state,
        "lifecycleEvent": event,
    }
    if event == "reauthorizationRequired":
        subscription.needs_reauthorization = True
    elif event == "subscriptionRemoved":
        del graph.subscriptions[subscription.id]
    else:  # missed: the notifications waiting for it are gone
        graph.pending = [p for p in graph.pending if p.subscription_id != subscription.id]
    return entry


class GraphDeliverer:
    """Batches per URL on a timer; a failed delivery is retried with exponential back-off for up
    to `retry_for`; an endpoint slow in more than `slow_share` of its answers is delayed, in more
    than `drop_share` its notifications are dropped for a while."""

    def __init__(self, tenant: Tenant, http: httpx.AsyncClient, policy: DeliveryPolicy) -> None:
        self.tenant = tenant
        self.http = http
        self.policy = policy
        # Per URL: (when, seconds to answer). An attempt that timed out took longer than its timeout.
        self.answers: dict[str, deque[tuple[float, float]]] = defaultdict(deque)
        self.dropping_until: dict[str, float] = {}
        self._lock = asyncio.Lock()

    @property
    def graph(self) -> GraphTenant:
        return self.tenant.graph

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.policy.interval)
            try:
                await self.deliver_due()
            except Exception:  # the loop must outlive any one bad delivery
                log.exception("graph delivery round failed")

    def state_of(self, url: str, now: float) -> str:
        if self.dropping_until.get(url, 0) > now:
            return "drop"
        recent = [seconds for at, seconds in self.answers[url] if now - at <= self.policy.window]
        if not recent:
            return "ok"
        if sum(s > self.policy.retry_timeout for s in recent) / len(recent) > self.policy.drop_share:
            self.dropping_until[url] = now + self.policy.drop_for
            return "drop"
        return (
            "slow"
            if sum(s > self.policy.timeout for s in recent) / len(recent) > self.policy.slow_share
            else "ok"
        )

    async def deliver_due(self, *, force: bool = False) -> dict[str, int]:
        async with self._lock:
            now = time.monotonic()
            held = {s.id for s in self.graph.subscriptions.values() if s.needs_reauthorization}
            due = [p for p in self.graph.pending if (force or p.due <= now) and p.subscription_id not in held]
            self.graph.pending = [p for p in self.graph.pending if p not in due]
            batches: dict[tuple[str, bool], list[PendingGraphNotification]] = defaultdict(list)
            for pending in due:
                if pending.subscription_id not in self.graph.subscriptions:
                    continue
                state = self.state_of(pending.url, now)
                if state == "drop":
                    self.tenant.delivery["graphDropped"] += 1
                    continue
                if state == "slow" and not force and pending.attempts == 0 and pending.first_attempt is None:
                    pending.first_attempt, pending.due = now, now + self.policy.slow_delay
                    self.graph.pending.append(pending)
                    continue
                batches[(pending.url, pending.attempts > 0)].append(pending)
            sent = 0
            for (url, retrying), entries in batches.items():
                timeout = self.policy.retry_timeout if retrying else self.policy.timeout
                if await self.post(url, [p.entry for p in entries], timeout):
                    sent += 1
                    self.tenant.delivery["graphDelivered"] += len(entries)
                else:
                    self._retry(entries, now)
            return {"requests": sent, "pending": len(self.graph.pending)}

    async def post(self, url: str, entries: list[dict[str, Any]], timeout: float) -> bool:
        """One attempt: a 2xx within `timeout`. A late answer is a failed attempt, as in Graph."""
        self.tenant.delivery["graphRequests"] += 1
        started = time.monotonic()
        try:
            answer = await self.http.post(url, json=envelope(self.graph, entries), timeout=timeout)
        except httpx.HTTPError as error:
            log.warning("graph delivery to %s failed: %s", url, type(error).__name__)
            timed_out = isinstance(error, httpx.TimeoutException)
            self.answers[url].append((started, timeout + 0.001 if timed_out else time.monotonic() - started))
            self.tenant.delivery["graphTimedOut"] += timed_out
            return False
        self.answers[url].append((started, time.monotonic() - started))
        return 200 <= answer.status_code < 300

    def _retry(self, entries: list[PendingGraphNotification], now: float) -> None:
        for pending in entries:
            pending.first_attempt = pending.first_attempt or now
            pending.attempts += 1
            if now - pending.first_attempt > self.policy.retry_for:
                self.tenant.delivery["graphExpired"] += 1
                continue
            pending.due = now + self.policy.retry_base * 2 ** (pending.attempts - 1)
            self.graph.pending.append(pending)
