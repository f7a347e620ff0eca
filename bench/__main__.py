"""Benchmarks, run on demand with `make bench`: each row is measured side by side with its
baseline in the same run (interleaved, so machine noise hits both), and reported as a ratio.

    python -m bench [--rounds N] [--only connectors|tenants]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx
import requests

from functions.core.resources import NOTIFICATIONS_QUEUE, SUBSCRIPTIONS_TABLE
from functions.core.services import Services
from functions.core.sources.sharepoint import SHAREPOINT, ListRef
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.subscriptions.renewal import RENEWAL_CONCURRENCY
from functions.core.subscriptions.store import to_entity
from local.clients import EmulatorClient, notification_entry
from local.processes import ROOT, free_port, wait_for_port
from local.stack import DEFAULT_FUNCTION_KEY, Stack

from .connectors import bench_connectors
from .scale import (
    add_items,
    bench_burst,
    bench_intake_load,
    bench_worker_at_scale,
    edit_items,
    host_memory_mib,
)
from .table import Row, attempt, bench_services, fresh_python, peak_rss_mib, render, side_by_side
from .teams import bench_decryption, bench_rich_intake
from .tenants import bench_tenants

SITE = "/sites/bench"
LISTING_SEEDED = 10_000
RENEWAL_DUE = 500


def bench_intake(stack: Stack, services: Services, rounds: int) -> list[Row]:
    emulator = EmulatorClient(stack.emulator_url)
    list_id = emulator.create_list(SITE, f"bench-{uuid.uuid4().hex[:6]}")
    record = services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=list_id))
    client_state = next(s["clientState"] for s in emulator.subscriptions() if s["id"] == record.id)
    entry = {
        "subscriptionId": record.id,
        "clientState": client_state,
        "expirationDateTime": "2026-04-30T17:27:00.0000000Z",
        "resource": list_id,
        "tenantId": "00000000-0000-0000-0000-000000000000",
        "siteUrl": SITE,
        "webId": "dbc5a806-e4d4-46e5-951c-6344d70b62fa",
    }
    one = json.dumps({"value": [entry]})
    hundred = json.dumps({"value": [entry] * 100})
    queue = services.storage.queue(NOTIFICATIONS_QUEUE)
    url = f"{stack.functions_url}/api/notifications/sharepoint"
    http = httpx.Client()

    def bare_put() -> None:
        queue.send_message(one)

    def post(body: str) -> Callable[[], None]:
        def send() -> None:
            response = http.post(url, content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 202, response.text

        return send

    def validation() -> None:
        assert http.post(url, params={"validationtoken": "bench"}).status_code == 200

    rows = []
    for name, action in (
        ("intake POST, 1 notification (HTTP)", post(one)),
        ("intake POST, 100 notifications (HTTP)", post(hundred)),
        ("validation echo (HTTP)", validation),
    ):
        ours, base = side_by_side(action, bare_put, rounds)
        rows.append(Row(name, "bare queue put (SDK)", ours, base))
    with bare_echo_server() as bare_url:

        def bare_echo() -> None:
            assert http.post(bare_url, params={"validationtoken": "bench"}).status_code == 200

        ours, base = side_by_side(validation, bare_echo, rounds)
        rows.append(Row("validation echo (HTTP)", "bare ASGI echo (uvicorn)", ours, base))
    queue.clear_messages()
    return rows


@contextlib.contextmanager
def bare_echo_server() -> Iterator[str]:
    """bench/bare_echo.py on a free port: what an HTTP answer costs here before any host code."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.bare_echo", "--port", str(port)], cwd=ROOT)
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def storage_requests(stack: Stack) -> Iterator[list[int]]:
    """Counts the requests to the stack's Azurite (tables and queues) made inside the block."""
    ports = {f":{stack.ports.table}/", f":{stack.ports.queue}/"}
    counted = [0]
    send = requests.Session.send

    def counting(session: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        if any(port in (request.url or "") for port in ports):
            counted[0] += 1
        return send(session, request, **kwargs)

    requests.Session.send = counting  # type: ignore[method-assign, assignment]
    try:
        yield counted
    finally:
        requests.Session.send = send  # type: ignore[method-assign]


def bench_worker(stack: Stack, services: Services, rounds: int) -> list[Row]:
    """Worker time for a list with 100 new changes vs the raw I/O it cannot avoid
    (GetChanges for those changes + one 100-entity table transaction), and the storage requests
    each makes."""
    emulator = EmulatorClient(stack.emulator_url)
    source = services.sharepoint.client
    writer = services.storage.table_writer("changes")
    assert writer is not None
    ours, base, lean_base = [], [], []
    our_requests, base_requests = [], []
    for _ in range(max(3, rounds // 10)):
        list_id = emulator.create_list(SITE, f"work-{uuid.uuid4().hex[:6]}")
        record = services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=list_id))
        checkpoint = services.subscriptions.checkpoints.read(list_id, SHAREPOINT)
        assert checkpoint is not None
        start_token = checkpoint.cursor
        for n in range(100):
            emulator.add_item(SITE, list_id, f"item {n}")
        message = json.dumps(
            {
                "source": "sharepoint",
                "receivedAt": "2026-01-01T00:00:00Z",
                "notifications": [{"subscriptionId": record.id, "resource": list_id, "siteUrl": SITE}],
            }
        )
        table = services.storage.table("changes")

        with storage_requests(stack) as counted:
            started = time.perf_counter()
            [page] = list(source.fetch_changes(ListRef(record.address, record.scope), start_token))
            table.submit_transaction(
                [
                    (
                        "upsert",
                        {
                            "PartitionKey": f"raw-{list_id}",
                            "RowKey": f"{i:05d}",
                            "v": c.change_token.string_value,
                        },
                    )
                    for i, c in enumerate(page)
                ]
            )
            base.append((time.perf_counter() - started) * 1000)
        base_requests.append(float(counted[0]))

        started = time.perf_counter()
        [page] = list(source.fetch_changes(ListRef(record.address, record.scope), start_token))
        writer.upsert(
            f"lean-{list_id}",
            [{"RowKey": f"{i:05d}", "v": c.change_token.string_value} for i, c in enumerate(page)],
        )
        lean_base.append((time.perf_counter() - started) * 1000)

        with storage_requests(stack) as counted:
            started = time.perf_counter()
            report = services.worker.process_message(message)
            ours.append((time.perf_counter() - started) * 1000)
        our_requests.append(float(counted[0]))
        assert report.changes_written == 100
    return [
        Row("worker: 100 changes to the change log", "GetChanges + 1 batch write (SDK)", ours, base),
        Row("  same", "GetChanges + 1 batch write (REST, as the worker)", ours, lean_base),
        Row("  same, storage requests per read", "same floor", our_requests, base_requests, "req"),
    ]


FIELD_CHANGES = 1000
FOLLOWED = ("Status", "Owner", "Priority", "Due", "Region")


def bench_fields(stack: Stack, services: Services, rounds: int) -> list[Row]:
    """The worker on 1,000 changes of a list whose subscription follows 5 fields, beside the same
    on a list whose subscription follows none (interleaved, a fresh pair each round); then the
    same with 10% of the items edited twice in the page, whose before and after per change come
    from their versions (one `$batch`)."""
    emulator = EmulatorClient(stack.emulator_url)
    rows = []
    for edited, name in (
        (0, "worker: 1,000 changes, 5 fields followed"),
        (FIELD_CHANGES // 10, "same, 10% edited twice (versions read)"),
    ):
        with_fields: list[float] = []
        without: list[float] = []
        for _ in range(max(3, rounds // 60)):
            for fields, sink in ((FOLLOWED, with_fields), ((), without)):
                list_id = emulator.create_list(SITE, f"fields-{uuid.uuid4().hex[:6]}")
                request = CreateSubscriptionRequest(site_url=SITE, list_id=list_id, fields=fields)
                record = services.subscriptions.create(request)
                add_items(stack.emulator_url, list_id, FIELD_CHANGES, **dict.fromkeys(FOLLOWED, "x"))
                edit_items(stack.emulator_url, list_id, range(1, edited + 1), **dict.fromkeys(FOLLOWED, "y"))
                message = json.dumps(
                    {
                        "source": "sharepoint",
                        "receivedAt": "2026-01-01T00:00:00Z",
                        "notifications": [
                            {"subscriptionId": record.id, "resource": list_id, "siteUrl": SITE}
                        ],
                    }
                )
                started = time.perf_counter()
                report = services.worker.process_message(message)
                sink.append((time.perf_counter() - started) * 1000)
                assert report.changes_written == FIELD_CHANGES + edited
        rows.append(Row(name, "same, no field followed", with_fields, without))
    return rows


BATCH_SIZE = 100  # requests per $batch, as the PnP libraries send them


def bench_field_reads(stack: Stack, services: Services, rounds: int) -> list[Row]:
    """Reading 5 fields of 1,000 changed items, the two ways SharePoint allows: the service's
    `GetItems` (a CAML `In` on `ID`, 500 ids a call, the editor expanded) against a `$batch` of
    one `GetItemById` per item (100 a batch, without the editor). SharePoint Online counts each
    request inside a batch against the app's throttling budget: 2 requests against 1,000."""
    emulator = EmulatorClient(stack.emulator_url)
    list_id = emulator.create_list(SITE, f"reads-{uuid.uuid4().hex[:6]}")
    add_items(stack.emulator_url, list_id, FIELD_CHANGES, **dict.fromkeys(FOLLOWED, "x"))
    target = ListRef(f"{stack.emulator_url}{SITE}", list_id)
    ids = list(range(1, FIELD_CHANGES + 1))
    token = emulator.http.post("/_emulator/token").json()["access_token"]
    http = httpx.Client(timeout=60, headers={"Authorization": f"Bearer {token}"})
    select = ",".join(("Id", *FOLLOWED))

    def get_items() -> None:
        assert len(services.sharepoint.client.field_values(target, ids, FOLLOWED)) == FIELD_CHANGES

    def batched() -> None:
        read = 0
        for start in range(0, len(ids), BATCH_SIZE):
            boundary = f"batch_{uuid.uuid4()}"
            parts = [
                f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
                f"GET {target.api_url}/items({item})?$select={select} HTTP/1.1\r\n"
                "Accept: application/json;odata=nometadata\r\n\r\n"
                for item in ids[start : start + BATCH_SIZE]
            ]
            answer = http.post(
                f"{stack.emulator_url}{SITE}/_api/$batch",
                content=("".join(parts) + f"--{boundary}--\r\n").encode(),
                headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
            )
            answer.raise_for_status()
            for part in answer.content.split(b"\r\n\r\n{")[1:]:
                read += bool(json.loads(b"{" + part.rsplit(b"}", 1)[0] + b"}").get("Id"))
        assert read == FIELD_CHANGES

    ours, theirs = side_by_side(get_items, batched, max(5, rounds // 20))
    return [
        Row(
            "read 5 fields of 1,000 items: GetItems (2 calls)",
            f"$batch of GetItemById ({FIELD_CHANGES // BATCH_SIZE} calls)",
            ours,
            theirs,
        )
    ]


def unknown_ids_body() -> bytes:
    """About 1 MiB of well-formed notifications, each for a made-up subscription (fresh ids, so
    no cache helps)."""
    one = len(json.dumps(notification_entry(str(uuid.uuid4()), site_url=SITE))) + 2
    count = (1024 * 1024 - 20) // one
    return json.dumps(
        {"value": [notification_entry(str(uuid.uuid4()), site_url=SITE) for _ in range(count)]}
    ).encode()


def bench_listing(stack: Stack, services: Services, rounds: int) -> list[Row]:
    """GET /api/subscriptions with 10,000 more subscriptions in the table: a first page and a page
    deep in the table, against the table query a page cannot avoid and the whole-table read the
    API did before it was paged."""
    emulator = EmulatorClient(stack.emulator_url)
    list_id = emulator.create_list(SITE, f"bench-{uuid.uuid4().hex[:6]}")
    real = services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=list_id))
    table = services.storage.table(SUBSCRIPTIONS_TABLE)
    seeded = sorted(str(uuid.uuid4()) for _ in range(LISTING_SEEDED))
    for start in range(0, len(seeded), 100):  # one entity-group transaction per 100
        batch = seeded[start : start + 100]
        # Inserts, not upserts: Azurite's in-memory store looks each upserted entity up by scanning
        # the partition, so an upsert transaction slows with the table (1 s a batch at 10,000 rows
        # here, past the 10-s timeout on a busy machine); an insert batch stays near 0.2 s.
        table.submit_transaction([("create", to_entity(replace(real, id=i))) for i in batch])
    http = httpx.Client(
        base_url=stack.functions_url, headers={"x-functions-key": DEFAULT_FUNCTION_KEY}, timeout=60
    )

    def page(after: str = "") -> Callable[[], None]:
        params = {"top": "100", **({"after": after} if after else {})}

        def get() -> None:
            response = http.get("/api/subscriptions", params=params)
            assert response.status_code == 200 and len(response.json()["value"]) == 100, response.text

        return get

    def sdk_page() -> None:
        pages = table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": "sharepoint"}, results_per_page=101
        ).by_page()
        assert len(list(next(pages))) == 101

    def whole_table() -> None:
        assert (
            len(list(table.query_entities("PartitionKey eq @pk", parameters={"pk": "sharepoint"}))) > 10_000
        )

    deep = page(f"sharepoint:{seeded[-500]}")
    rows = []
    for name, action, baseline_name, baseline, count in (
        (
            "list subscriptions, first page of 100",
            page(),
            "SDK query, one 101-entity page",
            sdk_page,
            rounds,
        ),
        ("same, a page 9,500 records in", deep, "first page of 100 (HTTP)", page(), rounds),
        ("same, first page of 100", page(), "read the whole table (unpaged)", whole_table, min(rounds, 20)),
    ):
        ours, base = side_by_side(action, baseline, count)
        rows.append(Row(name, baseline_name, ours, base))
    return rows


def bench_renewal(stack: Stack, services: Services, rounds: int) -> list[Row]:
    """A renewal run over the table bench_listing filled, with RENEWAL_DUE real subscriptions
    due: the run as deployed (several at once) against the same run one at a time."""
    emulator = EmulatorClient(stack.emulator_url)
    window = timedelta(days=45)
    due = [
        services.subscriptions.create(
            CreateSubscriptionRequest(site_url=SITE, list_id=emulator.create_list(SITE, f"renew-{i}"))
        )
        for i in range(RENEWAL_DUE)
    ]
    table_size = sum(1 for _ in services.storage.table(SUBSCRIPTIONS_TABLE).list_entities(select=["RowKey"]))

    def make_due() -> None:
        now = datetime.now(UTC)
        for record in due:
            current = services.subscriptions.get(record.id)
            services.subscriptions.store.save(current.renewed(now + timedelta(days=5), now))

    def run(concurrency: int) -> tuple[float, int]:
        make_due()
        patches = emulator.calls("UpdateSubscription")
        started = time.perf_counter()
        report = services.renewals.renew_due(window, concurrency=concurrency)
        elapsed = (time.perf_counter() - started) * 1000
        assert len(report.renewed) == RENEWAL_DUE and not report.failed, report
        return elapsed, emulator.calls("UpdateSubscription") - patches

    ours: list[float] = []
    sequential: list[float] = []
    patches: set[int] = set()
    for _ in range(max(1, rounds // 40)):  # each round renews RENEWAL_DUE subscriptions twice
        for concurrency, sink in ((RENEWAL_CONCURRENCY, ours), (1, sequential)):
            elapsed, calls = run(concurrency)
            sink.append(elapsed)
            patches.add(calls)
    print(
        f"renewal: {table_size} subscriptions in the table, {RENEWAL_DUE} due; "
        f"PATCH calls per run: {sorted(patches)}",
        flush=True,
    )
    return [
        Row(
            f"renewal run, {RENEWAL_DUE} due, {RENEWAL_CONCURRENCY} at once",
            "one at a time",
            ours,
            sequential,
        )
    ]


def bench_hostile_intake(stack: Stack, rounds: int) -> list[Row]:
    """A 1 MiB POST of unknown subscription ids (SharePoint gives up after 5 s) against the same
    size of body that is refused at parsing: what the lookups cost on top of reading the body."""
    url = f"{stack.functions_url}/api/notifications/sharepoint"
    runs = max(5, rounds // 20)
    bodies = [unknown_ids_body() for _ in range(runs + 1)]
    size, entries = len(bodies[0]), len(json.loads(bodies[0])["value"])
    garbage = b"{" + b" " * (size - 1)
    with httpx.Client(timeout=30) as client:
        reads_before = stack.log_dir.joinpath("functions-host.log").read_text().count(" rejected: ")

        def flood() -> None:
            response = client.post(url, content=bodies.pop(), headers={"Content-Type": "application/json"})
            assert response.status_code == 202, response.text

        def refused() -> None:
            assert client.post(url, content=garbage).status_code == 400

        ours, base = side_by_side(flood, refused, runs)
    lines = stack.log_dir.joinpath("functions-host.log").read_text().splitlines()
    reads = [
        int(line.split(" subscription read(s)")[0].rsplit(" ", 1)[-1])
        for line in lines
        if " rejected: " in line and "subscription read(s)" in line
    ][reads_before:]
    print(
        f"hostile intake: {entries} unknown ids in {size / 1024:.0f} KiB per POST; "
        f"storage reads per POST: max {max(reads)}",
        flush=True,
    )
    return [Row("intake POST, 1 MiB of unknown ids", "1 MiB refused at parsing (400)", ours, base)]


def bench_first_request(stack: Stack, services: Services) -> list[Row]:
    """The first request a freshly started host serves beside the same request once warm, with
    the `warmup` function (run by the host before the instance takes traffic, as Azure does on
    scale-out) and without it (`AzureWebJobs.warmup.Disabled`): what Graph's 3-s limit meets after
    a cold start, less the instance allocation Azure adds. And what warmup adds to the start."""
    emulator = EmulatorClient(stack.emulator_url)
    list_id = emulator.create_list(SITE, f"bench-first-{uuid.uuid4().hex[:6]}")
    record = services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=list_id))
    client_state = next(s["clientState"] for s in emulator.subscriptions() if s["id"] == record.id)
    entry = notification_entry(record.id, site_url=SITE, clientState=client_state, resource=list_id)
    url = f"{stack.functions_url}/api/notifications/sharepoint"
    requests: dict[str, Callable[[httpx.Client], int]] = {
        "validation echo": lambda http: http.post(url, params={"validationtoken": "bench"}).status_code,
        "intake POST, 1 notification": lambda http: http.post(url, json={"value": [entry]}).status_code,
    }
    rows = []
    starts: dict[bool, list[float]] = {True: [], False: []}
    for name, request in requests.items():
        first: dict[bool, list[float]] = {True: [], False: []}
        warm: list[float] = []
        for _ in range(5):
            for warmup in (True, False):
                stack.extra_settings.pop("AzureWebJobs.warmup.Disabled", None)
                if not warmup:
                    stack.extra_settings["AzureWebJobs.warmup.Disabled"] = "true"
                stack.kill("functions-host")
                began = time.perf_counter()
                stack.start_host(untouched=True)
                starts[warmup].append((time.perf_counter() - began) * 1000)
                with httpx.Client(timeout=30) as http:
                    for sink in [first[warmup]] + [warm] * 5:
                        started = time.perf_counter()
                        assert request(http) in (200, 202)
                        sink.append((time.perf_counter() - started) * 1000)
        stack.extra_settings.pop("AzureWebJobs.warmup.Disabled", None)
        rows.append(Row(f"{name}, first request after a cold start", "same request, warm", first[True], warm))
        rows.append(Row("  same, without the warmup function", "same request, warm", first[False], warm))
    rows.append(
        Row(
            "host start until it takes traffic, with warmup",
            "same, without warmup",
            starts[True],
            starts[False],
        )
    )
    services.storage.queue(NOTIFICATIONS_QUEUE).clear_messages()
    return rows


def bench_cold_start(rounds: int) -> list[Row]:
    runs = max(5, rounds // 20)
    eager_imports = "import function_app, azure.storage.queue, azure.data.tables, azure.identity, requests"
    app: list[float] = []
    bare: list[float] = []
    eager: list[float] = []
    for _ in range(runs):  # interleaved, so that a noisy moment lands on all three
        app.append(fresh_python("import function_app"))
        bare.append(fresh_python("import azure.functions"))
        eager.append(fresh_python(eager_imports))
    rss_app = [peak_rss_mib("import function_app")]
    rss_bare = [peak_rss_mib("import azure.functions")]
    return [
        Row("cold import of function_app", "import azure.functions", app, bare),
        Row("same, if the SDKs were imported eagerly", "import azure.functions", eager, bare),
        Row("peak RSS after importing function_app", "import azure.functions", rss_app, rss_bare, unit="MiB"),
        Row(
            "same, if the SDKs were imported eagerly",
            "import azure.functions",
            [peak_rss_mib(eager_imports)],
            rss_bare,
            unit="MiB",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--only", choices=["connectors", "tenants"], help="run one group of rows")
    args = parser.parse_args()
    if args.only == "connectors":
        print(render(bench_connectors()))
        return
    if args.only == "tenants":
        print(render(bench_tenants(args.rounds)))
        return
    print(
        f"python {sys.version.split()[0]}, {args.rounds} rounds, interleaved with each baseline", flush=True
    )
    rows: list[Row] = []
    with Stack(
        delivery_interval=3600,
        extra_settings={
            "AzureWebJobs.process_notifications.Disabled": "true",
            "AzureWebJobs.renew_subscriptions.Disabled": "true",
        },
    ) as stack:
        services = bench_services(stack)
        host_at_start = host_memory_mib(stack, "VmRSS")
        for name, group in (
            ("notification intake", partial(bench_intake, stack, services, args.rounds)),
            ("intake under load", partial(bench_intake_load, stack, services)),
            ("worker", partial(bench_worker, stack, services, args.rounds)),
            ("hostile intake", partial(bench_hostile_intake, stack, args.rounds)),
            ("subscription listing", partial(bench_listing, stack, services, args.rounds)),
            ("renewal", partial(bench_renewal, stack, services, args.rounds)),
            ("field-level changes", partial(bench_fields, stack, services, args.rounds)),
            ("field reads", partial(bench_field_reads, stack, services, args.rounds)),
            ("teams intake", partial(bench_rich_intake, stack, services, args.rounds)),
        ):
            rows += attempt(name, group)
        rows.append(
            Row(
                "functions host peak RSS, after all of the above",
                "same host, just started",
                [host_memory_mib(stack, "VmHWM")],
                [host_at_start],
                unit="MiB",
            )
        )
        # Last with this stack: it restarts the host.
        rows += attempt("first request after a cold start", partial(bench_first_request, stack, services))
    later: tuple[tuple[str, Callable[[], list[Row]]], ...] = (
        ("worker at scale", bench_worker_at_scale),
        ("burst", bench_burst),
        ("cold start", partial(bench_cold_start, args.rounds)),
        ("teams decryption", partial(bench_decryption, args.rounds)),
        ("connectors", bench_connectors),
        ("many tenants", partial(bench_tenants, args.rounds)),
    )
    for late_name, late_group in later:
        rows += attempt(late_name, late_group)
    print(render(rows))


if __name__ == "__main__":
    main()
