"""Fault and load tests: each starts a stack of its own (Azurite, emulator, Functions host with
every trigger but the timers), breaks something, and checks that nothing was lost or doubled.

Bounded in time and size; waits are deadlines for asynchronous work, never speed assertions.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from functions.core.resources import NOTIFICATIONS_QUEUE
from functions.core.settings import StorageSettings
from functions.core.storage import Storage
from local.clients import EmulatorClient, FunctionsClient, notification_entry
from local.stack import DEFAULT_FUNCTION_KEY, Stack
from tests.helpers import wait_until

SITE = "/sites/fault"
FAST_HOST = {
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.200",
    "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
    "AzureWebJobs.renew_subscriptions.Disabled": "true",
    "AzureWebJobs.sweep_changes.Disabled": "true",
}


@dataclass
class FaultStack:
    stack: Stack
    api: FunctionsClient
    emulator: EmulatorClient
    storage: Storage

    def subscribed_list(self) -> tuple[str, dict[str, str]]:
        """A new list, subscribed through the API; and the notification SharePoint sends for it."""
        list_id = self.emulator.create_list(SITE, f"list-{uuid.uuid4().hex[:8]}")
        response = self.api.create_subscription(SITE, list_id)
        assert response.status_code == 201, response.text
        created = response.json()["id"]
        [client_state] = [s["clientState"] for s in self.emulator.subscriptions() if s["id"] == created]
        entry = notification_entry(created, site_url=SITE, clientState=client_state, resource=list_id)
        return list_id, entry

    def changes_of(self, entry: dict[str, str]) -> Counter[tuple[Any, str]]:
        changes = self.api.changes(entry["subscriptionId"], top=1000)
        return Counter((c["itemId"], c["changeType"]) for c in changes)

    def changes_written(self) -> int:
        """What the workers of every host said they wrote, summed from their logs."""
        return sum(
            int(n)
            for log in self.stack.log_dir.glob("functions-host*.log")
            for n in re.findall(r"(\d+) change\(s\) written", log.read_text(errors="replace"))
        )

    def drain(self, timeout: float = 240) -> None:
        """Until the notifications queue is empty, put-back messages included. Generous: after an
        outage the host's queue poller and the messages' own retries back off, and a machine
        whose cores are busy stretches both; what the tests check is the outcome."""
        queue = self.storage.queue(NOTIFICATIONS_QUEUE)
        wait_until(
            lambda: queue.get_queue_properties().approximate_message_count == 0,
            timeout=timeout,
            interval=0.5,
            what="the notifications queue to drain",
        )


@contextmanager
def fault_stack(
    tmp_path: Path,
    *,
    persistent: bool = False,
    settings: dict[str, str] | None = None,
    delivery_interval: float = 0.3,
) -> Iterator[FaultStack]:
    """`delivery_interval`: how often the emulator sends SharePoint's notifications (a test that
    wants changes to pile up first sets it long and calls `emulator.deliver()`)."""
    stack = Stack(
        delivery_interval=delivery_interval,
        retry_interval=1.0,
        graph_slow_delay=5.0,  # a busy machine may answer Graph late; the tests wait seconds, not 10 min
        extra_settings={**FAST_HOST, **(settings or {})},
        storage_dir=tmp_path / "azurite" if persistent else None,
        log_dir=tmp_path / "logs",
    )
    with stack:
        api = FunctionsClient(stack.functions_url, key=DEFAULT_FUNCTION_KEY)
        emulator = EmulatorClient(stack.emulator_url)
        storage = Storage(StorageSettings(connection_string=stack.connection_string))
        try:
            yield FaultStack(stack, api, emulator, storage)
        finally:
            api.close()
            emulator.close()


# What the intake may answer under overload: 202, or a 503 that says when to come back.
ACCEPTED, SHED = "202", "503 with Retry-After"


def flood(url: str, entries: list[dict[str, str]], stop: threading.Event) -> Counter[str]:
    """Post copies of the entries, round robin, until `stop`; the answers, by kind: `ACCEPTED`,
    `SHED` (load shed as SharePoint expects it, retried by SharePoint), or anything else."""
    answers: Counter[str] = Counter()
    with httpx.Client(timeout=30) as http:
        n = 0
        while not stop.is_set():
            entry = entries[n % len(entries)]
            n += 1
            response = http.post(f"{url}/api/notifications/sharepoint", json={"value": [entry]})
            if response.status_code == 503 and response.headers.get("Retry-After"):
                answers[SHED] += 1
            else:
                answers[str(response.status_code)] += 1
    return answers


def make_changes(emulator_url: str, list_id: str, items: int, pause: float = 0.0) -> Counter[tuple[Any, str]]:
    """Add `items` items and update each once, `pause` seconds apart; the changes SharePoint will
    report."""
    made: Counter[tuple[Any, str]] = Counter()
    emulator = EmulatorClient(emulator_url)
    try:
        for n in range(items):
            item = emulator.add_item(SITE, list_id, f"item {n}")
            emulator.update_item(SITE, list_id, item, f"item {n}, edited")
            made.update([(item, "add"), (item, "update")])
            time.sleep(pause)
    finally:
        emulator.close()
    return made


def run_all(tasks: Sequence[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(len(tasks)) as pool:
        return [future.result() for future in [pool.submit(task) for task in tasks]]


def arrived(env: FaultStack, entry: dict[str, str], expected: Counter[tuple[Any, str]]) -> bool:
    return env.changes_of(entry) == expected
