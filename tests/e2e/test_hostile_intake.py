"""No request can hurt: hostile bodies and hostile parameters get 4xx (or rejected entries in a
202), never a 5xx; a flood of unknown ids costs a bounded number of storage reads; hung storage is
answered inside SharePoint's 5 s."""

from __future__ import annotations

import json
import re
import socket
import uuid

import httpx
import pytest

from local.clients import notification_entry
from local.processes import free_port
from local.stack import Ports, Stack
from tests.e2e.conftest import SITE

SHAREPOINT_TIMEOUT = 5.0  # SharePoint gives up on a notification URL after this


def entry(subscription_id: str, **fields: str) -> dict[str, str]:
    return notification_entry(subscription_id, site_url=SITE, **fields)


def post(stack, content: bytes, path: str = "/api/notifications/sharepoint") -> httpx.Response:
    return httpx.post(
        f"{stack.functions_url}{path}",
        content=content,
        headers={"Content-Type": "application/json"},
        timeout=SHAREPOINT_TIMEOUT,
    )


@pytest.mark.parametrize(
    "content",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"value": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
        b'{"value": [' + b"9" * 4301 + b"]}",
        b'{"value": [{"subscriptionId": ' + b"1" * 5000 + b"}]}",
    ],
    ids=["nested", "nested-entry", "huge-integer", "huge-integer-field"],
)
@pytest.mark.parametrize(
    "path",
    ["/api/notifications/sharepoint", "/api/notifications/graph", "/api/notifications/graph/lifecycle"],
)
def test_hostile_json_gets_400_never_a_5xx(stack, content, path):
    assert post(stack, content, path).status_code == 400


@pytest.mark.parametrize("path", ["/api/notifications/graph", "/api/notifications/graph/lifecycle"])
def test_a_lone_surrogate_in_a_graph_entry_is_a_rejected_entry(stack, path):
    entry = {"subscriptionId": str(uuid.uuid4()), "clientState": "a\ud800", "changeType": "updated"}
    response = post(stack, json.dumps({"value": [entry]}).encode(), path)
    assert response.status_code == 202
    assert response.json() == {"accepted": 0, "rejected": 1}


@pytest.mark.parametrize("field", ["clientState", "tenantId", "siteUrl", "webId", "resource"])
def test_a_lone_surrogate_is_a_rejected_entry_never_a_5xx(stack, field):
    payload = json.dumps({"value": [entry(str(uuid.uuid4()), **{field: "a\ud800b"})]}).encode()
    response = post(stack, payload)
    assert response.status_code == 202
    assert response.json() == {"accepted": 0, "rejected": 1}


def test_a_mebibyte_of_unknown_ids_is_answered_in_time_with_a_handful_of_reads(stack):
    entries: list[dict[str, str]] = []
    while len(json.dumps({"value": entries})) < 1024 * 1024 - 400:
        entries.append(entry(str(uuid.uuid4())))
    payload = json.dumps({"value": entries[:-1]}).encode()
    assert len(payload) <= 1024 * 1024
    response = post(stack, payload)
    assert response.status_code == 202
    assert response.json() == {"accepted": 0, "rejected": len(entries) - 1}
    host_log = (stack.log_dir / "functions-host.log").read_text()
    [line] = [line for line in host_log.splitlines() if f"{len(entries) - 1} rejected" in line]
    reads = re.search(r"(\d+) subscription read\(s\)", line)
    assert reads is not None
    assert int(reads.group(1)) <= 16
    assert len(line) < 2000  # one summary line, not one per entry


@pytest.mark.parametrize("site_url", ["/sites/../x", "/sites/a/../../b", "/sites/%2e%2e/x", "/sites//x"])
def test_a_site_url_that_walks_paths_is_refused(api, site_url):
    response = api.create_subscription(site_url, str(uuid.uuid4()))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


@pytest.mark.parametrize("top", [" 5", "+7", "1_000", "٣", "-1", "0", "1001", "1e2"])
def test_top_is_digits_from_1_to_1000_only(api, new_list, top):
    subscription = api.create_subscription(SITE, new_list).json()
    response = api.http.get("/api/changes", params={"subscriptionId": subscription["id"], "top": top})
    assert response.status_code == 400


def test_hung_storage_is_answered_with_503_inside_sharepoints_five_seconds(stack):
    # A storage endpoint that accepts connections and never answers.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        port = hung.getsockname()[1]
        ports = Ports(blob=port, queue=port, table=port, emulator=stack.ports.emulator, functions=free_port())
        host = Stack(ports=ports, log_dir=stack.log_dir / "hung")
        host.log_dir.mkdir(exist_ok=True)
        try:
            host.start_host()
            response = httpx.post(
                f"{host.functions_url}/api/notifications/sharepoint",
                json={"value": [entry(str(uuid.uuid4()))]},
                timeout=SHAREPOINT_TIMEOUT,
            )
            assert response.status_code == 503
            assert response.headers["retry-after"]
        finally:
            host.stop()
