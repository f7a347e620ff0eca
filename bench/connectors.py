"""Connector benchmarks: what the outbox costs over posting directly, the end-to-end latency from a
SharePoint change to a receiver against the floor of its parts, and what ten receivers that never
finish answering cost a healthy sink. Every row is a ratio measured side by side in one run."""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from functions.core.change_log import row_to_view
from functions.core.egress import post_to_receiver
from functions.core.read_leases import MIN_READ_INTERVAL
from functions.core.services import Services
from functions.core.sinks.delivery import MAX_BATCH_ROWS, READ_AHEAD_ROWS, Drained, Signal, batch_id
from functions.core.sinks.payloads import webhook_body
from functions.core.sinks.service import CreateSinkRequest
from functions.core.sources.sharepoint import ListRef
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.subscriptions import SubscriptionRecord
from local.clients import EmulatorClient
from local.stack import DEFAULT_FUNCTION_KEY, Stack

from .table import Row, bench_services, p99

SITE = "/sites/bench-connectors"
OUTBOX_ROWS = 10_000
LATENCY_ROUNDS = 30
DRIP_ROUNDS = 10
DRIPPING_SINKS = 10
# The worker reads one list at most every MIN_READ_INTERVAL (notifications coalesce): rounds are
# spaced past it, so that the rows measure the pipeline rather than that designed wait.
ROUND_GAP_SECONDS = MIN_READ_INTERVAL.total_seconds() + 0.2


def bench_connectors() -> list[Row]:
    rows = bench_outbox()
    rows += bench_latency_and_drips()
    return rows


def bench_outbox() -> list[Row]:
    """10,000 rows to a signed webhook through the cursor, against posting the same signed
    batches straight to the same receiver through the same egress sender."""
    with Stack(
        delivery_interval=3600,
        extra_settings={
            "AzureWebJobs.process_notifications.Disabled": "true",
            "AzureWebJobs.deliver_changes.Disabled": "true",
            "AzureWebJobs.catch_up_sinks.Disabled": "true",
        },
    ) as stack:
        services = bench_services(stack)
        emulator = EmulatorClient(stack.emulator_url)
        subscription = _subscription(services, emulator)
        scope = subscription.scope
        now = datetime.now(UTC)
        services.change_log.append(
            scope,
            [
                {
                    "RowKey": f"{n:020d}",
                    "subscriptionId": subscription.id,
                    "source": subscription.source,
                    "changeType": "update",
                    "itemId": n,
                    "time": now,
                }
                for n in range(OUTBOX_ROWS)
            ],
        )
        name = f"bench-{uuid.uuid4().hex[:6]}"
        url = emulator.receiver_url("webhook", name)
        sink, secret = services.sinks.create(subscription.id, CreateSinkRequest(type="webhook", url=url))
        emulator.receiver_secret(name, secret or "")
        keys = [f"{n:020d}" for n in range(OUTBOX_ROWS)]
        changes = [
            row
            for start in range(0, OUTBOX_ROWS, MAX_BATCH_ROWS)
            for row in [services.change_log.rows(scope, keys[start : start + MAX_BATCH_ROWS])]
        ]

        def post(batch: list[dict[str, Any]]) -> None:
            views = [row_to_view(row) for row in batch]
            message_id = batch_id(sink.id, [row["RowKey"] for row in batch], "direct")
            sent_at = datetime.now(UTC)
            body = webhook_body(message_id, views, sent_at)
            headers = {
                "Content-Type": "application/json",
                "webhook-id": message_id,
                "webhook-timestamp": str(int(sent_at.timestamp())),
                "webhook-signature": Webhook(secret or "").sign(message_id, sent_at, body),
            }
            answer = post_to_receiver(url, body.encode(), headers, allow_loopback_http=True)
            assert answer.status == 204, answer.status

        def direct() -> None:
            for batch in changes:
                post(batch)

        def read_and_post() -> None:
            after = ""
            while rows := services.change_log.following(scope, after=after, limit=READ_AHEAD_ROWS):
                for start in range(0, len(rows), MAX_BATCH_ROWS):
                    post(rows[start : start + MAX_BATCH_ROWS])
                after = rows[-1]["RowKey"]

        def through_the_cursor() -> None:
            cursor = services.delivery.cursors.get(scope, sink.id)
            assert cursor is not None
            services.delivery.cursors.update(cursor, lambda c: replace(c, position=""))
            ended = None
            while ended is not Drained.NOTHING_OWED:
                report = services.delivery.drain(Signal(scope, sink.id, "bench").to_message(), holder="bench")
                ended = report.ended
            final = services.delivery.cursors.get(scope, sink.id)
            assert final is not None and final.position == keys[-1], report

        ours: list[float] = []
        read_too: list[float] = []
        base: list[float] = []
        for _ in range(3):
            for action, samples in ((through_the_cursor, ours), (read_and_post, read_too), (direct, base)):
                started = time.perf_counter()
                action()
                samples.append((time.perf_counter() - started) * 1000)
        emulator.close()
    name = f"{OUTBOX_ROWS:,} changes → webhook, by cursor"
    return [
        Row(name, "same batches posted directly", ours, base),
        Row(name, "same rows read + posted, no cursor", ours, read_too),
    ]


def bench_latency_and_drips() -> list[Row]:
    with Stack(
        delivery_interval=0.05,
        extra_settings={
            "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.100",
            "AzureWebJobs.renew_subscriptions.Disabled": "true",
            "AzureWebJobs.sweep_changes.Disabled": "true",
            "SINK_RETRY_BASE_SECONDS": "1",
        },
    ) as stack:
        services = bench_services(stack)
        emulator = EmulatorClient(stack.emulator_url)
        api = httpx.Client(
            base_url=stack.functions_url, headers={"x-functions-key": DEFAULT_FUNCTION_KEY}, timeout=30
        )
        rows = [_latency(stack, services, emulator, api)]
        rows.append(_drips(services, emulator, api))
        api.close()
        emulator.close()
    return rows


def _latency(stack: Stack, services: Services, emulator: EmulatorClient, api: httpx.Client) -> Row:
    """From an item added in SharePoint to its change at a signed webhook, against one intake
    POST, one GetChanges read and one post to the same receiver, timed one after the other."""
    subscription = _subscription(services, emulator)
    name, _ = _webhook(emulator, api, subscription.id)
    url = emulator.receiver_url("webhook", name)
    intake = f"{stack.functions_url}/api/notifications/sharepoint"
    entry = {"subscriptionId": "00000000-0000-0000-0000-00000000dead", "clientState": "x", "resource": "x"}
    target = ListRef(subscription.address, subscription.scope)
    token = services.sharepoint.client.current_change_token(target)
    end_to_end: list[float] = []
    floor: list[float] = []
    for _ in range(LATENCY_ROUNDS):
        seen = len(emulator.received("webhook", name))
        started = time.perf_counter()
        emulator.add_item(SITE, subscription.scope, "latency")
        while len(emulator.received("webhook", name)) == seen:
            time.sleep(0.005)
        end_to_end.append((time.perf_counter() - started) * 1000)
        time.sleep(ROUND_GAP_SECONDS)

        started = time.perf_counter()
        httpx.post(intake, json={"value": [entry]})
        list(services.sharepoint.client.fetch_changes(target, token, subscription_id=subscription.id))
        post_to_receiver(url, b"{}", {"Content-Type": "application/json"}, allow_loopback_http=True)
        floor.append((time.perf_counter() - started) * 1000)
    row = Row(
        "SharePoint change → signed webhook, end to end",
        "one intake + one read + one post",
        end_to_end,
        floor,
    )
    print(
        f"  end to end p50 {statistics.median(end_to_end):.0f} ms, p99 {p99(end_to_end):.0f} ms; "
        f"floor p50 {statistics.median(floor):.0f} ms, p99 {p99(floor):.0f} ms",
        flush=True,
    )
    return row


def _drips(services: Services, emulator: EmulatorClient, api: httpx.Client) -> Row:
    """A healthy sink's change latency with ten receivers that hold every delivery open past the
    egress deadline, against a list with the healthy sink alone."""
    crowded = _subscription(services, emulator)
    dripping = [_webhook(emulator, api, crowded.id)[0] for _ in range(DRIPPING_SINKS)]
    healthy, _ = _webhook(emulator, api, crowded.id)
    alone = _subscription(services, emulator)
    lonely, _ = _webhook(emulator, api, alone.id)
    with_drips: list[float] = []
    without: list[float] = []
    for name in dripping:
        # Every attempt of every round drips past the egress deadline (30 s), and is retried.
        emulator.receiver_behaviour("webhook", name, status=204, times=1000, delaySeconds=45)
    for _ in range(DRIP_ROUNDS):
        with_drips.append(_arrival(emulator, crowded.scope, healthy))
        without.append(_arrival(emulator, alone.scope, lonely))
        time.sleep(ROUND_GAP_SECONDS)
    return Row(
        f"a sink's change beside {DRIPPING_SINKS} dripping sinks",
        "the same sink alone",
        with_drips,
        without,
    )


def _arrival(emulator: EmulatorClient, list_id: str, receiver: str) -> float:
    seen = len(emulator.received("webhook", receiver))
    started = time.perf_counter()
    emulator.add_item(SITE, list_id, "drip round")
    while len(emulator.received("webhook", receiver)) == seen:
        time.sleep(0.01)
    return (time.perf_counter() - started) * 1000


def _subscription(services: Services, emulator: EmulatorClient) -> SubscriptionRecord:
    list_id = emulator.create_list(SITE, f"bench-{uuid.uuid4().hex[:6]}")
    return services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=list_id))


def _webhook(emulator: EmulatorClient, api: httpx.Client, subscription_id: str) -> tuple[str, str]:
    name = f"bench-{uuid.uuid4().hex[:6]}"
    url = emulator.receiver_url("webhook", name)
    created = api.post(f"/api/subscriptions/{subscription_id}/sinks", json={"type": "webhook", "url": url})
    created.raise_for_status()
    secret = created.json()["secret"]
    emulator.receiver_secret(name, secret)
    return name, secret
