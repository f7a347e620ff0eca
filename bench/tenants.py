"""Many tenants, measured on a TENANCY=multi stack with 100 guest tenants onboarded and consented
through the emulator's admin-consent endpoint, 100 subscriptions each (one real per tenant, the
rest seeded into the table):

- GET /api/subscriptions: the first page of 10,100 records, and one tenant's 100 (its scopes'
  range, filtered by the table service);
- a renewal run with one subscription due in each of the 100 tenants (each renewal acts with that
  tenant's token) against the same number due in the home tenant;
- tenant B's change, from the edit to its row in GET /api/changes, while tenant A is throttled
  (every call answered 429 with Retry-After 60, its changes waiting) against B with A idle.
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx

from functions.core.resources import SUBSCRIPTIONS_TABLE
from functions.core.services import Services
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.subscriptions import SubscriptionRecord
from functions.core.subscriptions.store import to_entity
from functions.core.tenancy import tenant_scope
from local.clients import EmulatorClient, FunctionsClient
from local.stack import DEFAULT_FUNCTION_KEY, DEFAULT_MASTER_KEY, Stack

from .table import Row, bench_services, side_by_side

GUESTS = 100
PER_TENANT = 100
SITE = "/sites/bench"
WINDOW = timedelta(days=45)


def bench_tenants(rounds: int) -> list[Row]:
    with Stack(
        tenancy="multi",
        delivery_interval=0.05,
        retry_interval=1.0,
        extra_settings={
            "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.100",
            "AzureWebJobs.renew_subscriptions.Disabled": "true",
            "AzureWebJobs.sweep_changes.Disabled": "true",
        },
    ) as stack:
        services = bench_services(stack)
        home = EmulatorClient(stack.emulator_url)
        api = FunctionsClient(stack.functions_url, key=DEFAULT_FUNCTION_KEY, master_key=DEFAULT_MASTER_KEY)
        started = time.perf_counter()
        guests = [consented(api, home, f"guest-{i}") for i in range(GUESTS)]
        print(
            f"tenants: {GUESTS} onboarded and consented in {time.perf_counter() - started:.1f}s", flush=True
        )
        started = time.perf_counter()
        in_guests = [subscribed(services, home.in_tenant(tenant), tenant) for tenant in guests]
        in_home = [subscribed(services, home, None) for _ in range(GUESTS)]
        print(f"tenants: {2 * GUESTS} real subscriptions in {time.perf_counter() - started:.1f}s", flush=True)
        seed(services, in_guests)
        rows = listing(stack, guests[0], rounds)
        rows += renewal(services, in_guests, in_home, rounds)
        rows += throttled(services, home, api, guests[:2], rounds)
        api.close()
        home.close()
        return rows


def consented(api: FunctionsClient, home: EmulatorClient, name: str) -> str:
    added = home.add_tenant(name)
    onboarded = api.onboard_tenant(added["id"], name, added["sharePointUrl"]).raise_for_status().json()
    callback = httpx.get(onboarded["consentUrl"], follow_redirects=False).headers["location"]
    assert httpx.get(callback).json()["state"] == "active"
    return added["id"]


def subscribed(services: Services, emulator: EmulatorClient, tenant: str | None) -> SubscriptionRecord:
    list_id = emulator.create_list(SITE, f"bench-{uuid.uuid4().hex[:8]}")
    return services.subscriptions.create(
        CreateSubscriptionRequest(site_url=SITE, list_id=list_id, tenant_id=tenant)
    )


def seed(services: Services, real: list[SubscriptionRecord]) -> None:
    """PER_TENANT - 1 more records per tenant, copies of its real one under new ids and scopes."""
    table = services.storage.table(SUBSCRIPTIONS_TABLE)
    started = time.perf_counter()
    for record in real:
        tenant = services.tenancy.id_of(record.scope)
        copies = [
            to_entity(replace(record, id=str(uuid.uuid4()), scope=tenant_scope(tenant, str(uuid.uuid4()))))
            for _ in range(PER_TENANT - 1)
        ]
        table.submit_transaction([("create", entity) for entity in copies])
    print(f"tenants: {len(real) * (PER_TENANT - 1)} records seeded in {time.perf_counter() - started:.1f}s")


def listing(stack: Stack, tenant: str, rounds: int) -> list[Row]:
    http = httpx.Client(
        base_url=stack.functions_url, headers={"x-functions-key": DEFAULT_FUNCTION_KEY}, timeout=60
    )

    def first_page() -> None:
        response = http.get("/api/subscriptions", params={"top": "100"})
        assert response.status_code == 200 and len(response.json()["value"]) == 100, response.text

    def one_tenant() -> None:
        response = http.get("/api/subscriptions", params={"top": "1000", "tenantId": tenant})
        assert response.status_code == 200 and len(response.json()["value"]) == PER_TENANT, response.text

    ours, base = side_by_side(one_tenant, first_page, max(5, rounds // 4))
    http.close()
    return [
        Row(
            f"list one tenant's {PER_TENANT} of {GUESTS * PER_TENANT + GUESTS} subscriptions "
            f"({GUESTS + 1} tenants)",
            "first page of 100, all tenants",
            ours,
            base,
        )
    ]


def renewal(
    services: Services, in_guests: list[SubscriptionRecord], in_home: list[SubscriptionRecord], rounds: int
) -> list[Row]:
    def due(records: list[SubscriptionRecord]) -> None:
        now = datetime.now(UTC)
        for record in records:
            current = services.subscriptions.get(record.id)
            services.subscriptions.store.save(current.renewed(now + timedelta(days=5), now))

    def run(records: list[SubscriptionRecord]) -> float:
        due(records)
        started = time.perf_counter()
        report = services.renewals.renew_due(WINDOW)
        elapsed = (time.perf_counter() - started) * 1000
        assert len(report.renewed) == len(records) and not report.failed, report
        return elapsed

    first = run(in_guests)
    # The tenants' SharePoint tokens were asked when their subscriptions were made.
    print(f"tenants: first renewal run across {GUESTS} tenants: {first:.0f} ms", flush=True)
    ours: list[float] = []
    base: list[float] = []
    for _ in range(max(2, rounds // 40)):
        ours.append(run(in_guests))
        base.append(run(in_home))
    return [
        Row(
            f"renewal run, 1 due in each of {GUESTS} tenants ({GUESTS * PER_TENANT} in the table)",
            f"{GUESTS} due in the home tenant",
            ours,
            base,
        )
    ]


def throttled(
    services: Services, home: EmulatorClient, api: FunctionsClient, pair: list[str], rounds: int
) -> list[Row]:
    held, flowing = (home.in_tenant(tenant) for tenant in pair)
    held_list = held.create_list(SITE, "held")
    services.subscriptions.create(
        CreateSubscriptionRequest(site_url=SITE, list_id=held_list, tenant_id=pair[0])
    )
    flowing_list = flowing.create_list(SITE, "flowing")
    record = services.subscriptions.create(
        CreateSubscriptionRequest(site_url=SITE, list_id=flowing_list, tenant_id=pair[1], fields=["Title"])
    )

    def latency() -> float:
        title = uuid.uuid4().hex
        started = time.perf_counter()
        flowing.add_item(SITE, flowing_list, title)
        while not any(change.get("fields", {}).get("Title") == title for change in api.changes(record.id)):
            if time.perf_counter() - started > 60:
                raise TimeoutError("tenant B's change did not arrive within 60 s")
            time.sleep(0.01)
        return (time.perf_counter() - started) * 1000

    count = max(10, rounds // 10)
    alone = [latency() for _ in range(count)]
    # The service's first read of A meets a 429; SharePoint then throttles the app in A for 60 s.
    held.inject_fault("GetChanges", 429, retry_after=60, times=100_000, path_contains=held_list)
    held.add_item(SITE, held_list, "waiting for the Retry-After")
    while held.calls("GetChanges") == 0:
        time.sleep(0.05)
    during = []
    for index in range(count):
        held.add_item(SITE, held_list, f"also waiting {index}")
        during.append(latency())
    held.clear_faults()
    print(
        f"tenants: B's change latency, A idle {statistics.median(alone):.0f} ms, "
        f"A throttled {statistics.median(during):.0f} ms",
        flush=True,
    )
    return [
        Row(
            "tenant B's change, edit to row, while tenant A is throttled (429, 60 s)",
            "B with A idle",
            during,
            alone,
        )
    ]
