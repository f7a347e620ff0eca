"""What the local host must do as Azure does: keys, the admin API, poison messages, 503s."""

from __future__ import annotations

import uuid

import httpx
import pytest

from local.processes import free_port
from local.stack import DEFAULT_FUNCTION_KEY, DEFAULT_MASTER_KEY, Ports, Stack
from tests.e2e.conftest import SITE


@pytest.mark.parametrize(
    ("headers", "params", "status"),
    [
        ({}, {}, 401),
        ({"x-functions-key": "wrong"}, {}, 401),
        ({}, {"code": "wrong"}, 401),
        ({"x-functions-key": DEFAULT_FUNCTION_KEY}, {}, 200),
        ({}, {"code": DEFAULT_FUNCTION_KEY}, 200),
        ({"x-functions-key": DEFAULT_MASTER_KEY}, {}, 200),
    ],
)
def test_the_management_api_needs_the_function_key_or_the_master_key(stack, headers, params, status):
    response = httpx.get(f"{stack.functions_url}/api/subscriptions", headers=headers, params=params)
    assert response.status_code == status


def test_anonymous_functions_need_no_key(stack):
    health = httpx.get(f"{stack.functions_url}/api/health").json()
    assert (health["status"], health["storage"]) == ("ok", "ok")
    assert set(health["intake"]) == {"answers", "over3s", "share", "windowSeconds"}


def test_the_admin_api_takes_only_the_master_key(stack):
    url = f"{stack.functions_url}/admin/functions/renew_subscriptions"
    assert httpx.post(url, json={}, headers={"x-functions-key": DEFAULT_FUNCTION_KEY}).status_code == 401
    assert httpx.post(url, json={}, headers={"x-functions-key": DEFAULT_MASTER_KEY}).status_code == 202
    missing = f"{stack.functions_url}/admin/functions/no_such_function"
    assert httpx.post(missing, json={}, headers={"x-functions-key": DEFAULT_MASTER_KEY}).status_code == 404


def test_unknown_routes_are_404(stack):
    assert httpx.get(f"{stack.functions_url}/api/nothing-here").status_code == 404


def test_management_api_errors_are_clear_json(api, emulator, new_list):
    bad = api.http.post("/api/subscriptions", content=b"{", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadRequest"
    missing_field = api.http.post("/api/subscriptions", json={"siteUrl": SITE})
    assert missing_field.status_code == 400 and "listId" in missing_field.json()["error"]["message"]
    assert api.get_subscription("no-such-id").status_code == 404
    no_list = api.create_subscription(SITE, str(uuid.uuid4()))
    assert no_list.status_code == 404
    assert no_list.json()["error"]["upstreamStatus"] == 404 and no_list.json()["error"]["requestId"]

    emulator.inject_fault("GetList", 503, retry_after=60, times=1)
    throttled = api.create_subscription(SITE, new_list)
    assert throttled.status_code == 503 and throttled.headers["retry-after"] == "60"
    again = api.create_subscription(SITE, new_list)  # too soon: SharePoint throttles it again
    assert again.status_code == 503 and 0 < int(again.headers["retry-after"]) <= 60

    emulator.clear_faults()  # as if the minute had passed
    assert api.create_subscription(SITE, new_list).status_code == 201
    assert api.create_subscription(SITE, new_list).status_code == 409


def test_changes_api_validates_its_query(api):
    assert api.http.get("/api/changes").status_code == 400
    assert api.http.get("/api/changes", params={"subscriptionId": "x", "top": "0"}).status_code == 400
    assert api.http.get("/api/changes", params={"subscriptionId": "nope"}).status_code == 404


def test_a_site_lists_its_lists_and_libraries_to_pick_from(api, emulator):
    list_id = emulator.create_list(SITE, f"pick-{uuid.uuid4().hex[:8]}")
    library_id, _ = emulator.create_library(SITE, f"docs-{uuid.uuid4().hex[:8]}")
    response = api.http.get("/api/sites/lists", params={"siteUrl": SITE})
    assert response.status_code == 200
    offered = {item["id"]: item for item in response.json()["value"]}
    assert (offered[list_id]["kind"], offered[list_id]["baseTemplate"]) == ("list", 100)
    assert (offered[library_id]["kind"], offered[library_id]["baseTemplate"]) == ("library", 101)
    for site in ("", "sites/x", "https://elsewhere.example/sites/x", "/sites/../x"):
        refused = api.http.get("/api/sites/lists", params={"siteUrl": site})
        assert refused.status_code == 400, site
        assert refused.json()["error"]["code"] == "BadRequest"


def test_subscriptions_are_listed_a_page_at_a_time_each_exactly_once(api, emulator):
    created = {
        api.create_subscription(SITE, emulator.create_list(SITE, f"paged-{uuid.uuid4().hex[:8]}")).json()[
            "id"
        ]
        for _ in range(3)
    }
    first = api.list_subscriptions(top=1).json()
    assert len(first["value"]) == 1 and "top=1" in first["nextLink"]
    pages = [first["value"]]
    link = first["nextLink"]
    while link:
        page = api.http.get(link).json()
        assert len(page["value"]) <= 1
        pages.append(page["value"])
        link = page.get("nextLink")
    ids = [s["id"] for page in pages for s in page]
    assert len(ids) == len(set(ids)) and created <= set(ids)
    assert ids == [s["id"] for s in api.all_subscriptions(top=2)]


def test_subscriptions_api_validates_its_paging(api):
    for params in (
        {"top": "0"},
        {"top": "1001"},
        {"top": "+5"},
        {"after": "nope"},
        {"after": "sharepoint:a/b"},
    ):
        response = api.list_subscriptions(**params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "BadRequest"


def test_notifications_and_the_management_api_get_503_when_storage_is_down(stack):
    dead = free_port()
    ports = Ports(blob=dead, queue=dead, table=dead, emulator=stack.ports.emulator, functions=free_port())
    broken = Stack(ports=ports, log_dir=stack.log_dir / "broken")
    broken.log_dir.mkdir(exist_ok=True)
    try:
        broken.start_host()
        entry = {
            "subscriptionId": str(uuid.uuid4()),
            "clientState": "c",
            "expirationDateTime": "2026-04-30T17:27:00.0000000Z",
            "resource": "r",
            "siteUrl": SITE,
        }
        response = httpx.post(
            f"{broken.functions_url}/api/notifications/sharepoint", json={"value": [entry]}, timeout=30
        )
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert httpx.get(f"{broken.functions_url}/api/health", timeout=30).status_code == 503
        management = httpx.get(
            f"{broken.functions_url}/api/subscriptions",
            headers={"x-functions-key": DEFAULT_FUNCTION_KEY},
            timeout=30,
        )
        assert management.status_code == 503
        assert management.headers["retry-after"] == "30"
        assert management.json()["error"]["code"] == "StorageUnavailable"
        validation = httpx.post(
            f"{broken.functions_url}/api/notifications/sharepoint", params={"validationtoken": "ok"}
        )
        assert (validation.status_code, validation.text) == (200, "ok")
    finally:
        broken.stop()


def test_the_host_runs_the_warmup_function_before_it_takes_traffic(stack):
    """As Azure does on an instance added by scale-out: the warmup runs, then the port opens."""
    log = (stack.log_dir / "functions-host.log").read_text()
    warmed = log.index("warmup: the intake's clients are ready")
    assert warmed < log.index("Host started:")
