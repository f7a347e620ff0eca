"""Connectors under faults: no committed row is ever skipped by a sink. Every row reaches a signed
webhook at least once, and exactly once at a receiver that de-duplicates by `webhook-id`: with the
host killed between two pages of a read, a 500 on the second page, table storage stopped while a
batch waits, a receiver down and back; and a slow receiver costs only its own sink."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

from tests.fault.conftest import SITE, FaultStack, fault_stack
from tests.helpers import wait_until

# 1,010 changes: a full GetChanges page of 1,000, then 10 more.
CHANGES = 1010
CONNECTOR_SETTINGS = {
    "SINK_RETRY_BASE_SECONDS": "1",
    # The catch-up timer every few seconds: the net under lost signals and poisoned deliveries.
    "SINK_CATCH_UP_SCHEDULE": "*/3 * * * * *",
}


def signed_webhook(env: FaultStack, subscription_id: str) -> str:
    name = f"webhook-{uuid.uuid4().hex[:8]}"
    url = env.emulator.receiver_url("webhook", name)
    response = env.api.add_sink(subscription_id, "webhook", url)
    assert response.status_code == 201, response.text
    env.emulator.receiver_secret(name, response.json()["secret"])
    return name


def valid_arrivals(env: FaultStack, name: str) -> list[dict[str, Any]]:
    return [a for a in env.emulator.received("webhook", name) if a.get("valid")]


def deduplicated(arrivals: list[dict[str, Any]]) -> Counter[Any]:
    """What a receiver that keeps one message per `webhook-id` has: each change, counted."""
    kept: dict[str, list[Any]] = {}
    for arrival in arrivals:
        body = json.loads(arrival["body"])
        kept.setdefault(arrival["headers"]["webhook-id"], [c["itemId"] for c in body["changes"]])
    return Counter(item for items in kept.values() for item in items)


def all_arrived(env: FaultStack, name: str, items: list[int]) -> Counter[Any] | None:
    got = deduplicated(valid_arrivals(env, name))
    return got if set(got) >= set(items) else None


def assert_every_row_arrived_once(env: FaultStack, name: str, items: list[int]) -> None:
    got = wait_until(
        lambda: all_arrived(env, name, items), timeout=180, interval=1, what="every row at the sink"
    )
    assert set(got) == set(items)
    assert got == Counter(dict.fromkeys(items, 1)), "a row came twice under different webhook-ids"
    sent = Counter(c["itemId"] for a in valid_arrivals(env, name) for c in json.loads(a["body"])["changes"])
    assert set(sent) == set(items)  # at least once, without de-duplication too


def add_items(env: FaultStack, list_id: str, count: int) -> list[int]:
    return [env.emulator.add_item(SITE, list_id, f"item {n}") for n in range(count)]


def test_a_host_killed_between_two_pages_of_a_read_skips_no_row_at_the_sink(tmp_path):
    with fault_stack(
        tmp_path, settings={**CONNECTOR_SETTINGS, "LOCAL_HOST_PROCESSING_LEASE_SECONDS": "5"}
    ) as env:
        list_id, entry = env.subscribed_list()
        hook = signed_webhook(env, entry["subscriptionId"])
        # The second page of the read is slow, so the host dies after the first page is committed.
        env.emulator.inject_fault("GetChanges", 200, delay_seconds=8, path_contains=list_id, after=1)
        items = add_items(env, list_id, CHANGES)
        wait_until(
            lambda: len(env.api.changes(entry["subscriptionId"], top=1000)) >= 1000,
            timeout=120,
            what="the first page in the change log",
        )
        env.stack.kill("functions-host")
        env.stack.start_host()
        assert_every_row_arrived_once(env, hook, items)


def test_a_500_on_the_second_page_skips_no_row_at_the_sink(tmp_path):
    with fault_stack(tmp_path, settings=CONNECTOR_SETTINGS, delivery_interval=3600) as env:
        list_id, entry = env.subscribed_list()
        hook = signed_webhook(env, entry["subscriptionId"])
        # Every try of the read's second page fails: the message is retried from the checkpoint.
        env.emulator.inject_fault("GetChanges", 500, times=4, path_contains=list_id, after=1)
        items = add_items(env, list_id, CHANGES)
        env.emulator.deliver()
        assert_every_row_arrived_once(env, hook, items)


def test_table_storage_stopped_while_a_batch_waits_skips_no_row_at_the_sink(tmp_path):
    with fault_stack(tmp_path, persistent=True, settings=CONNECTOR_SETTINGS) as env:
        list_id, entry = env.subscribed_list()
        hook = signed_webhook(env, entry["subscriptionId"])
        env.emulator.receiver_behaviour("webhook", hook, status=503, times=1, retryAfter=3)
        items = add_items(env, list_id, 5)
        wait_until(
            lambda: env.emulator.received("webhook", hook), timeout=60, what="the first, refused, attempt"
        )
        azurite = env.stack.service("azurite")
        azurite.stop()
        env.stack.services.remove(azurite)
        more = add_items(env, list_id, 3)  # SharePoint retries its notification meanwhile
        wait_until(
            lambda: env.emulator.counters()["delivery"].get("failed", 0) > 0,
            timeout=30,
            what="a refused notification",
        )
        env.stack.start_azurite()
        assert_every_row_arrived_once(env, hook, items + more)


def test_a_receiver_down_for_a_long_while_then_back_gets_every_row_once(tmp_path):
    with fault_stack(tmp_path, settings=CONNECTOR_SETTINGS) as env:
        list_id, entry = env.subscribed_list()
        hook = signed_webhook(env, entry["subscriptionId"])
        env.emulator.receiver_behaviour("webhook", hook, status=503, times=5)
        items = add_items(env, list_id, 30)
        assert_every_row_arrived_once(env, hook, items)
        answers = [a["answered"] for a in env.emulator.received("webhook", hook)]
        assert answers[:5] == [503] * 5


def test_ten_dripping_receivers_do_not_hold_back_a_healthy_sink(tmp_path):
    with fault_stack(tmp_path, settings=CONNECTOR_SETTINGS) as env:
        list_id, entry = env.subscribed_list()
        dripping = [signed_webhook(env, entry["subscriptionId"]) for _ in range(10)]
        for name in dripping:
            # Longer than the egress deadline: each of these attempts is cut off at 30 s.
            env.emulator.receiver_behaviour("webhook", name, status=204, times=1, delaySeconds=45)
        healthy = signed_webhook(env, entry["subscriptionId"])
        first = add_items(env, list_id, 1)
        wait_until(lambda: valid_arrivals(env, healthy), timeout=60, what="the healthy sink's first change")
        second = add_items(env, list_id, 1)
        wait_until(
            lambda: all_arrived(env, healthy, first + second),
            timeout=60,
            what="the healthy sink's second change",
        )
        # Every dripping receiver still holds its first delivery: the healthy sink did not wait.
        assert all(env.emulator.received("webhook", name) == [] for name in dripping)
