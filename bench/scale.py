"""The benchmarks at scale: intake under concurrent load, a worker read of 10,000 changes, a burst of
notifications for one list with the queue worker running, and the Functions host's peak memory."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import requests.adapters
from azure.storage.queue import QueueClient

from functions.core.change_log import ChangeLog
from functions.core.models import NotificationMessage, QueuedNotification
from functions.core.queue_writer import QueueWriter
from functions.core.resources import CHANGES_TABLE, NOTIFICATIONS_QUEUE
from functions.core.scopes import RowScope
from functions.core.services import Services
from functions.core.sources.sharepoint import SHAREPOINT, ListRef
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.sources.sharepoint.rows import change_row
from local.clients import EmulatorClient, notification_entry
from local.stack import Stack

from .table import Row, bench_services

SITE = "/sites/bench"
LOAD_POSTS = 2_000
LOAD_CONCURRENCY = 16
LOAD_CHUNK = 200
WORKER_CHANGES = 10_000
BURST_CHANGES = 50
BURST_NOTIFICATIONS = 200
BURST_ROUNDS = 5
QUEUED_VISIBLE_AFTER = 2
# The bench's own host polls an idle queue at most this often (host.json allows 2 s), so that
# the burst is timed on the work, not on where the poll interval happened to be.
BURST_POLLING_INTERVAL = "00:00:00.100"
LOAD_QUEUE = "bench-load"


def bench_intake_load(stack: Stack, services: Services) -> list[Row]:
    """2,000 notification POSTs, 16 at a time, in chunks of 200 interleaved with the same number
    of validation echoes and of bare queue puts on the same Azurite."""
    _, entry = subscribed_list(services, EmulatorClient(stack.emulator_url), "load")
    body = json.dumps({"value": [entry]})
    url = f"{stack.functions_url}/api/notifications/sharepoint"
    local = threading.local()

    def http() -> httpx.Client:
        if not hasattr(local, "http"):
            local.http = httpx.Client(timeout=30)
        return local.http

    def queue() -> QueueClient:
        if not hasattr(local, "queue"):
            local.queue = QueueClient.from_connection_string(stack.connection_string, NOTIFICATIONS_QUEUE)
        return local.queue

    def post() -> None:
        response = http().post(url, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 202, response.text

    def echo() -> None:
        assert http().post(url, params={"validationtoken": "load"}).status_code == 200

    def put() -> None:
        queue().send_message(body)

    latencies: dict[str, list[float]] = {"post": [], "echo": [], "put": []}
    walls: dict[str, float] = dict.fromkeys(latencies, 0.0)
    with ThreadPoolExecutor(LOAD_CONCURRENCY) as pool:
        for _ in range(LOAD_POSTS // LOAD_CHUNK):
            for name, action in (("post", post), ("echo", echo), ("put", put)):
                started = time.perf_counter()
                latencies[name] += pool.map(lambda _, act=action: timed(act), range(LOAD_CHUNK))
                walls[name] += time.perf_counter() - started
    services.storage.queue(NOTIFICATIONS_QUEUE).clear_messages()
    throughput = {name: [LOAD_POSTS / wall] for name, wall in walls.items()}
    load = f"{LOAD_POSTS:,} at {LOAD_CONCURRENCY} at once"
    return [
        Row(f"intake POST, {load}", "bare queue put, same load", latencies["post"], latencies["put"]),
        Row("  same, throughput", "bare queue put, same load", throughput["post"], throughput["put"], "/s"),
        Row(f"validation echo, {load}", "bare queue put, same load", latencies["echo"], latencies["put"]),
        Row("  same, throughput", "bare queue put, same load", throughput["echo"], throughput["put"], "/s"),
    ]


def subscribed_list(services: Services, emulator: EmulatorClient, prefix: str) -> tuple[str, dict[str, str]]:
    """A new list with a subscription, and the notification SharePoint would send for it."""
    list_id = emulator.create_list(SITE, f"{prefix}-{uuid.uuid4().hex[:6]}")
    record = services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=list_id))
    client_state = next(s["clientState"] for s in emulator.subscriptions() if s["id"] == record.id)
    return list_id, notification_entry(record.id, site_url=SITE, clientState=client_state, resource=list_id)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


@contextmanager
def counted_requests() -> Iterator[list[str]]:
    """The URL of every HTTP request this process sends (the storage SDKs and the SharePoint
    client both go through requests), retries included."""
    sent: list[str] = []
    send = requests.adapters.HTTPAdapter.send

    def counting(adapter: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(request.url)
        return send(adapter, request, *args, **kwargs)

    with mock.patch.object(requests.adapters.HTTPAdapter, "send", counting):
        yield sent


def add_items(emulator_url: str, list_id: str, count: int, **fields: Any) -> None:
    local = threading.local()

    def add(n: int) -> None:
        if not hasattr(local, "client"):
            local.client = EmulatorClient(emulator_url)
        local.client.add_item(SITE, list_id, f"item {n}", **fields)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(add, range(count)))


def edit_items(emulator_url: str, list_id: str, item_ids: Iterable[int], **fields: Any) -> None:
    local = threading.local()

    def edit(item_id: int) -> None:
        if not hasattr(local, "client"):
            local.client = EmulatorClient(emulator_url)
        local.client.update_item(SITE, list_id, item_id, **fields)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(edit, item_ids))


def bench_worker_at_scale() -> list[Row]:
    """One notification for a list with 10,000 new changes, against the I/O it cannot avoid: the
    GetChanges pages and the same rows written in 100-row transactions, done directly. On a stack
    of its own: Azurite (in memory) slows down as its tables grow."""
    settings = {
        "AzureWebJobs.process_notifications.Disabled": "true",
        "AzureWebJobs.renew_subscriptions.Disabled": "true",
    }
    with Stack(delivery_interval=3600, extra_settings=settings) as stack:
        return worker_rows(stack, bench_services(stack))


def worker_rows(stack: Stack, services: Services) -> list[Row]:
    emulator = EmulatorClient(stack.emulator_url)
    source = services.sharepoint.client
    table = services.storage.table(CHANGES_TABLE)
    ours: list[float] = []
    floor: list[float] = []
    ours_requests: list[float] = []
    floor_requests: list[float] = []
    for _ in range(2):
        list_id = emulator.create_list(SITE, f"scale-{uuid.uuid4().hex[:6]}")
        record = services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=list_id))
        checkpoint = services.subscriptions.checkpoints.read(list_id, SHAREPOINT)
        assert checkpoint is not None
        add_items(stack.emulator_url, list_id, WORKER_CHANGES)
        scope = RowScope(record.id, SHAREPOINT, site_url=record.address, list_id=list_id)

        with counted_requests() as sent:
            started = time.perf_counter()
            written = 0
            for page in source.fetch_changes(ListRef(record.address, list_id), checkpoint.cursor):
                # The same rows the worker keeps, in a partition of their own.
                rows = [{**change_row(scope, change), "PartitionKey": f"raw-{list_id}"} for change in page]
                for start in range(0, len(rows), 100):
                    table.submit_transaction([("upsert", row) for row in rows[start : start + 100]])
                written += len(page)
            floor.append((time.perf_counter() - started) * 1000)
        floor_requests.append(len(sent) * 1000 / WORKER_CHANGES)
        assert written == WORKER_CHANGES

        message = json.dumps(
            {
                "source": "sharepoint",
                "receivedAt": datetime.now(UTC).isoformat(),
                "notifications": [{"subscriptionId": record.id, "resource": list_id, "siteUrl": SITE}],
            }
        )
        with counted_requests() as sent:
            started = time.perf_counter()
            report = services.worker.process_message(message)
            ours.append((time.perf_counter() - started) * 1000)
        ours_requests.append(len(sent) * 1000 / WORKER_CHANGES)
        assert report.changes_written == WORKER_CHANGES, report
    name = f"worker: {WORKER_CHANGES:,} changes, one notification"
    return [
        Row(name, "GetChanges pages + row batches", ours, floor),
        Row("  same, requests per 1,000 changes", "same floor", ours_requests, floor_requests, "req"),
    ]


def bench_burst() -> list[Row]:
    """With the queue worker running in the host: 200 notifications for one list after 50 changes,
    against one notification after 50 changes, delivered two ways: POSTed to the intake 16 at a
    time (the first read then shares one Python process and one Azurite with 200 intake requests),
    and put on the queue as the intake would (the worker's cost alone). The POSTed burst is also
    measured against one notification POSTed amid 199 bare puts on another queue: the same load on
    storage, without the intake or the worker taking part. Time from the first notification to
    the worker's read of the 50 changes; GetChanges calls and change rows written once the queue
    has drained (put-back messages included)."""
    settings = {
        "AzureWebJobs.renew_subscriptions.Disabled": "true",
        "AzureWebJobs.sweep_changes.Disabled": "true",
        "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": BURST_POLLING_INTERVAL,
    }
    rows = []
    with Stack(delivery_interval=3600, extra_settings=settings) as stack:
        services = bench_services(stack)
        rows += burst_rows(stack, services, "queued", queued(services), QUEUED_VISIBLE_AFTER)
        rows += burst_rows(stack, services, "POSTed", posted(stack), 0, load=bare_puts(stack))
    return rows


Delivery = Callable[[dict[str, str]], None]


SHED_RETRIES = 5
SHED_PAUSE_SECONDS = 0.5


def posted(stack: Stack) -> Delivery:
    url = f"{stack.functions_url}/api/notifications/sharepoint"
    local = threading.local()

    def post(entry: dict[str, str]) -> None:
        if not hasattr(local, "http"):
            local.http = httpx.Client(timeout=30)
        body = json.dumps({"value": [entry]})
        # An overloaded intake sheds with 503 and Retry-After, and SharePoint sends the
        # notification again: so does the bench, sooner (the time it costs is in the figure).
        for _ in range(SHED_RETRIES):
            response = local.http.post(url, content=body, headers={"Content-Type": "application/json"})
            if response.status_code != 503:
                break
            time.sleep(SHED_PAUSE_SECONDS)
        assert response.status_code == 202, response.text

    return post


def bare_puts(stack: Stack) -> Callable[[], None]:
    """A notification-sized put on a queue no worker reads: the storage load one more intake
    request brings, without the intake and without the worker's handling of its message."""
    QueueClient.from_connection_string(stack.connection_string, LOAD_QUEUE).create_queue()
    body = json.dumps({"value": [notification_entry(str(uuid.uuid4()), site_url=SITE)]})
    local = threading.local()

    def put() -> None:
        if not hasattr(local, "queue"):
            local.queue = QueueClient.from_connection_string(stack.connection_string, LOAD_QUEUE)
        local.queue.send_message(body)

    return put


def queued(services: Services) -> Delivery:
    """Put where the intake would, invisible for QUEUED_VISIBLE_AFTER seconds: the 200 become
    visible together, after every put is done, so the worker's cost is timed alone. (With the
    worker's storage clients, which retry: the intake's do not, and a put that meets Azurite
    closing an idle connection would fail the run.)"""
    queue = QueueWriter(services.storage)

    def put(entry: dict[str, str]) -> None:
        message = NotificationMessage(
            source=SHAREPOINT,
            received_at=datetime.now(UTC),
            notifications=[
                QueuedNotification(subscription_id=entry["subscriptionId"], resource=entry["resource"])
            ],
        )
        queue.put_later(message.model_dump_json(by_alias=True, exclude_none=True), QUEUED_VISIBLE_AFTER)

    return put


def burst_rows(
    stack: Stack,
    services: Services,
    how: str,
    deliver: Delivery,
    visible_after: int,
    load: Callable[[], None] | None = None,
) -> list[Row]:
    """The burst against one notification; with `load`, also against one notification delivered
    amid as many bare puts as the burst has notifications more (the storage load alone)."""
    emulator = EmulatorClient(stack.emulator_url)
    change_log = ChangeLog(services.storage)
    host_log = stack.log_dir / "functions-host.log"
    kinds = ("single", "burst", "amid") if load else ("single", "burst")
    results: dict[str, dict[str, list[float]]] = {
        kind: {"seconds": [], "reads": [], "written": []} for kind in kinds
    }
    for _ in range(BURST_ROUNDS):
        for kind, sink in results.items():
            list_id, entry = subscribed_list(services, emulator, "burst")
            add_items(stack.emulator_url, list_id, BURST_CHANGES)
            reads_before = emulator.calls("GetChanges")
            log_offset = host_log.stat().st_size
            notify = partial(deliver, entry)
            deliveries: dict[str, list[Callable[[], None]]] = {
                "single": [notify],
                "burst": [notify] * BURST_NOTIFICATIONS,
                "amid": [notify, *[load] * (BURST_NOTIFICATIONS - 1)] if load else [],
            }
            seconds = time_to_last_change(host_log, entry, deliveries[kind], visible_after)
            drain(services)
            assert len(change_log.page(list_id, after="", top=BURST_CHANGES + 1)[0]) == BURST_CHANGES
            sink["seconds"].append(seconds * 1000)
            sink["reads"].append(emulator.calls("GetChanges") - reads_before)
            sink["written"].append(changes_written_since(host_log, log_offset))
    single, burst = results["single"], results["burst"]
    print(
        f"burst ({how}): {BURST_NOTIFICATIONS} notifications after {BURST_CHANGES} changes: GetChanges "
        f"calls {burst['reads']}, change rows written {burst['written']} (one notification: "
        f"{single['reads']}, {single['written']})",
        flush=True,
    )
    rows = [
        Row(
            f"burst of {BURST_NOTIFICATIONS} {how}: time to last change",
            f"1 notification {how}, same {BURST_CHANGES} changes",
            burst["seconds"],
            single["seconds"],
        )
    ]
    if "amid" in results:
        rows.append(
            Row(
                "  same",
                f"1 {how} amid {BURST_NOTIFICATIONS - 1} bare puts, 16 at once",
                burst["seconds"],
                results["amid"]["seconds"],
            )
        )
    return [
        *rows,
        Row("  same, GetChanges calls", "1 notification", burst["reads"], single["reads"], ""),
        Row("  same, change rows written", "1 notification", burst["written"], single["written"], ""),
    ]


def time_to_last_change(
    host_log: Path, entry: dict[str, str], deliveries: list[Callable[[], None]], visible_after: int
) -> float:
    """Seconds from the first of `deliveries` (16 at a time, in order; or from when queued
    notifications become visible) to the worker's log line for the read that wrote the changes
    (from the host's log, so that watching adds no load to the storage under test)."""
    offset = host_log.stat().st_size
    read_line = re.compile(
        rf"^(\S+ \S+) INFO \S+: read {BURST_CHANGES} changes for subscription {entry['subscriptionId']}", re.M
    )
    started = datetime.now()  # the host's log is in local time, to the millisecond
    with ThreadPoolExecutor(min(LOAD_CONCURRENCY, len(deliveries))) as pool:
        delivered = pool.map(lambda deliver: deliver(), deliveries)
        while not (found := read_line.search(tail_of(host_log, offset))):
            if (datetime.now() - started).total_seconds() > 120:
                raise TimeoutError(f"no read of {BURST_CHANGES} changes for {entry['subscriptionId']}")
            time.sleep(0.02)
        list(delivered)
    logged = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f")
    return (logged - started).total_seconds() - visible_after


def tail_of(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def drain(services: Services) -> None:
    """Until every message, put-back ones included, has been taken off the queue."""
    queue = services.storage.queue(NOTIFICATIONS_QUEUE)
    deadline = time.monotonic() + 120
    while queue.get_queue_properties().approximate_message_count:
        if time.monotonic() > deadline:
            raise TimeoutError("the notifications queue did not drain")
        time.sleep(0.2)


def changes_written_since(host_log: Path, offset: int) -> int:
    return sum(int(n) for n in re.findall(r"(\d+) change\(s\) written", tail_of(host_log, offset)))


def host_memory_mib(stack: Stack, field: str) -> float:
    """The Functions host's `VmRSS` (now) or `VmHWM` (peak so far), from /proc."""
    [host] = [service for service in stack.services if service.name == "functions-host"]
    status = Path(f"/proc/{host.process.pid}/status").read_text()
    return float(next(line.split()[1] for line in status.splitlines() if line.startswith(field))) / 1024
