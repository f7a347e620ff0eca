"""The emulator's Graph delivery: back-off, giving up, and the slow/drop thresholds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from local.m365.graph.delivery import DeliveryPolicy, GraphDeliverer
from local.m365.graph.state import GraphSubscription, GraphTenant, PendingGraphNotification
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


def test_an_endpoint_too_often_slow_is_delayed_then_dropped():
    policy = DeliveryPolicy(slow_share=0.10, drop_share=0.15)
    delivery, _ = deliverer(202, policy)
    now = 1000.0
    delivery.answers[URL].extend([(now, True)] + [(now, False)] * 7)  # 12.5% slow
    assert delivery.state_of(URL, now) == "slow"
    delivery.answers[URL].append((now, True))  # 2 of 9: 22% slow
    assert delivery.state_of(URL, now) == "drop"
    delivery.answers[URL].clear()
    assert delivery.state_of(URL, now + 1) == "drop"  # dropped for drop_for, whatever comes
    assert delivery.state_of(URL, now + policy.drop_for + 1) == "ok"
