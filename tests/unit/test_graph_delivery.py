"""The emulator's Graph delivery: back-off, giving up, and the slow/drop thresholds."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx

from local.m365.graph.delivery import DeliveryPolicy, GraphDeliverer
from local.m365.graph.model import GraphSubscription, PendingGraphNotification
from local.m365.graph.state import GraphTenant
from local.m365.tenant import Tenant

URL = "https://receiver.example/hook"


def deliverer(answer: int, policy: DeliveryPolicy) -> tuple[GraphDeliverer, GraphTenant]:
    graph = GraphTenant("tenant")
    graph.subscriptions["s"] = GraphSubscription(
        "s", "/users/u/events", "event", ("created",), URL, None,
        datetime.now(UTC) + timedelta(days=1), None, "app", "u", "calendar",
    )  # fmt: skip
    tenant = Tenant("tenant")
    tenant.graph = graph
    transport = httpx.MockTransport(lambda request: httpx.Response(answer))
    return GraphDeliverer(tenant, httpx.AsyncClient(transport=transport), policy), graph


def pending() -> PendingGraphNotification:
    return PendingGraphNotification("s", URL, {"subscriptionId": "s"}, due=0.0)


def test_a_failed_delivery_is_retried_with_a_doubling_delay_then_given_up():
    policy = DeliveryPolicy(retry_base=10, retry_for=25)
    delivery, graph = deliverer(500, policy)
    graph.pending.append(pending())
    asyncio.run(delivery.deliver_due(force=True))
    [first] = graph.pending
    assert first.attempts == 1
    assert first.first_attempt is not None
    delays = [first.due - first.first_attempt]
    first.first_attempt -= 12  # as if 12 s had passed
    asyncio.run(delivery.deliver_due(force=True))
    [second] = graph.pending
    assert second.first_attempt is not None
    delays.append(second.due - (second.first_attempt + 12))
    assert [round(d) for d in delays] == [10, 20]
    second.first_attempt -= 30  # past retry_for: dropped
    asyncio.run(delivery.deliver_due(force=True))
    assert graph.pending == []
    assert delivery.tenant.delivery["graphExpired"] == 1


def test_the_2026_thresholds_are_the_defaults():
    policy = DeliveryPolicy()
    assert (policy.timeout, policy.retry_timeout) == (3.0, 10.0)
    assert (policy.slow_share, policy.drop_share) == (0.10, 0.15)
    assert policy.slow_delay == policy.drop_for == policy.window == 600.0
    assert policy.retry_for == 4 * 3600


def test_answers_over_3_s_make_an_endpoint_slow_and_over_10_s_make_it_drop():
    policy = DeliveryPolicy()
    delivery, _ = deliverer(202, policy)
    now = 1000.0
    delivery.answers[URL].extend([(now, 4.0)] + [(now, 0.2)] * 8)  # 1 of 9 over 3 s: 11%
    assert delivery.state_of(URL, now) == "slow"
    delivery.answers[URL].append((now - policy.window - 1, 30.0))  # outside the window: ignored
    assert delivery.state_of(URL, now) == "slow"
    delivery.answers[URL].extend([(now, 11.0), (now, float("inf"))])  # 2 of 11 over 10 s: 18%
    assert delivery.state_of(URL, now) == "drop"
    delivery.answers[URL].clear()
    assert delivery.state_of(URL, now + 1) == "drop"  # dropped for drop_for, whatever comes
    assert delivery.state_of(URL, now + policy.drop_for + 1) == "ok"


def test_a_slow_endpoints_new_notifications_come_10_minutes_late():
    delivery, graph = deliverer(202, DeliveryPolicy())
    delivery.answers[URL].extend([(time.monotonic(), 5.0)] * 2)
    graph.pending.append(pending())
    asyncio.run(delivery.deliver_due())
    [held] = graph.pending
    assert held.first_attempt is not None
    assert round(held.due - held.first_attempt) == 600
    assert delivery.tenant.delivery["graphRequests"] == 0


def test_a_first_attempt_answered_after_3_s_has_failed_and_a_retry_waits_10_s():
    timeouts: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"]["read"])
        raise httpx.ReadTimeout("late", request=request)

    delivery, graph = deliverer(202, DeliveryPolicy(retry_base=0))
    delivery.http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    graph.pending.append(pending())
    asyncio.run(delivery.deliver_due(force=True))
    assert delivery.state_of(URL, time.monotonic()) == "slow"  # over 3 s, not over 10 s: not dropping
    asyncio.run(delivery.deliver_due(force=True))
    assert timeouts == [3.0, 10.0]
    assert delivery.tenant.delivery["graphTimedOut"] == 2
    assert [p.attempts for p in graph.pending] == [2]
    assert delivery.state_of(URL, time.monotonic()) == "drop"  # a retry past 10 s: half the answers
