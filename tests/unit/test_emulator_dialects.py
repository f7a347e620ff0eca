"""The emulator reads SharePoint and Graph in every spelling the services accept, and refuses what
they refuse: path forms, verb tunnelling, and the rules of both batch formats. In process, through
Starlette's test client."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from starlette.testclient import TestClient

from local.m365.server import create_app
from local.m365.sharepoint.paths import canonical_path

SITE = "/sites/dialects"


@pytest.fixture
def http() -> Iterator[TestClient]:
    with TestClient(create_app(delivery_interval=3600)) as client:
        token = client.post("/_emulator/token").json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (
            "/sites/x/_API/Web/Lists/GetByTitle('My ''Tasks''')/Items",
            "/sites/x/_api/web/lists/getbytitle('My ''Tasks''')/items",
        ),
        ("/_api/web/lists/GetById('ABC')/items/getItemById(5)", "/_api/web/lists('ABC')/items(5)"),
        ("/_api/web/Lists(guid'ABC')/GetItemById('7')", "/_api/web/lists(guid'ABC')/items(7)"),
        ("/_api/web/lists('a')/Subscriptions/GetById('S1')", "/_api/web/lists('a')/subscriptions('S1')"),
        (
            "/_api/Web/GetFileByServerRelativePath(DecodedUrl='/Docs/A.docx')/CheckOut",
            "/_api/web/getfilebyserverrelativeurl('/Docs/A.docx')/checkout()",
        ),
        ("/Sites/Keep/Case/_api/web/", "/Sites/Keep/Case/_api/web"),
        ("/v1.0/users/A/drive", "/v1.0/users/A/drive"),
    ],
)
def test_sharepoint_paths_are_read_in_every_spelling(written: str, read: str) -> None:
    assert canonical_path(written) == read


def test_a_tunnelled_verb_is_the_verb(http: TestClient) -> None:
    created = http.post(f"{SITE}/_api/web/lists", json={"Title": "Tunnel", "BaseTemplate": 100}).json()
    item = http.post(f"{SITE}/_api/web/lists('{created['Id']}')/items", json={"Title": "a"}).json()
    url = f"{SITE}/_api/Web/Lists/GetById('{created['Id']}')/Items({item['Id']})"
    merged = http.post(url, json={"Title": "b"}, headers={"X-HTTP-Method": "MERGE", "IF-MATCH": "*"})
    assert merged.status_code == 204
    stale = http.post(url, json={"Title": "c"}, headers={"X-HTTP-Method": "MERGE", "IF-MATCH": '"1"'})
    assert stale.status_code == 412
    assert http.get(url).json()["Title"] == "b"
    assert http.post(url, headers={"X-HTTP-Method": "DELETE"}).status_code == 200
    assert http.get(url).status_code == 404
    assert http.put(f"{SITE}/_api/web/lists").status_code == 405
    unknown = http.get(f"{SITE}/_api/web/NoSuchThing")
    assert (
        unknown.status_code == 404
        and "NoSuchThing".lower() in unknown.json()["odata.error"]["message"]["value"]
    )


def test_verbose_answers_carry_metadata_and_next_links(http: TestClient) -> None:
    created = http.post(f"{SITE}/_api/web/lists", json={"Title": "my list", "BaseTemplate": 100}).json()
    assert created["ListItemEntityTypeFullName"] == "SP.Data.My_x0020_listListItem"
    items = f"{SITE}/_api/web/lists('{created['Id']}')/items"
    verbose = {"Accept": "application/json;odata=verbose"}
    wrong_type = {"__metadata": {"type": "SP.Data.OtherListItem"}, "Title": "x"}
    assert http.post(items, json=wrong_type).status_code == 400
    for n in range(3):
        typed = {"__metadata": {"type": created["ListItemEntityTypeFullName"]}, "Title": str(n)}
        assert http.post(items, json=typed).status_code == 201
    page = http.get(items, params={"$top": 2}, headers=verbose).json()["d"]
    assert [r["__metadata"]["type"] for r in page["results"]] == ["SP.Data.My_x0020_listListItem"] * 2
    assert "$skiptoken=Paged=TRUE&p_ID=2" in unquote(page["__next"])
    assert "__metadata" not in http.get(items).json()["value"][0]
    # SharePoint ignores $skip on items: page one again.
    assert http.get(items, params={"$top": 2, "$skip": 2}).json()["value"][0]["Title"] == "0"


def multipart(boundary: str, parts: list[str]) -> bytes:
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--\r\n"
    return body.encode()


def test_a_sharepoint_batch_runs_each_request_and_answers_each(http: TestClient) -> None:
    created = http.post(f"{SITE}/_api/web/lists", json={"Title": "Batched", "BaseTemplate": 100}).json()
    items = f"http://testserver{SITE}/_api/web/lists('{created['Id']}')/items"
    changeset = multipart(
        "changeset_1",
        [
            "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            f'POST {items} HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{{"Title": "{n}"}}'
            for n in range(2)
        ],
    ).decode()
    body = multipart(
        "batch_1",
        [
            f"Content-Type: multipart/mixed; boundary=changeset_1\r\n\r\n{changeset}",
            "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            f"GET {items} HTTP/1.1\r\nAccept: application/json;odata=nometadata\r\n",
            "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
            f"GET {items}(99) HTTP/1.1\r\n",
        ],
    )
    answer = http.post(
        f"{SITE}/_api/$batch", content=body, headers={"Content-Type": "multipart/mixed; boundary=batch_1"}
    )
    assert answer.status_code == 200
    statuses = [line for line in answer.text.splitlines() if line.startswith("HTTP/1.1 ")]
    assert statuses == [
        "HTTP/1.1 201 Created",
        "HTTP/1.1 201 Created",
        "HTTP/1.1 200 OK",
        "HTTP/1.1 404 Not Found",
    ]
    not_multipart = http.post(f"{SITE}/_api/$batch", json={"requests": []})
    assert not_multipart.status_code == 400


def test_a_graph_batch_follows_graphs_rules(http: TestClient) -> None:
    user = "/users/batch@contoso.onmicrosoft.com"
    steps = [
        {"id": "1", "method": "GET", "url": f"{user}/drive"},
        {"id": "2", "method": "GET", "url": f"{user}/noSuchThing"},
        {"id": "3", "method": "POST", "url": f"{user}/messages", "dependsOn": ["2"],
         "headers": {"Content-Type": "application/json"}, "body": {"subject": "x"}},
        {"id": "4", "method": "POST", "url": f"{user}/messages", "dependsOn": ["1"],
         "headers": {"Content-Type": "application/json"}, "body": {"subject": "y"}},
    ]  # fmt: skip
    answer = http.post("/v1.0/$batch", json={"requests": steps})
    assert answer.status_code == 200
    statuses = {r["id"]: r["status"] for r in answer.json()["responses"]}
    assert statuses == {"1": 200, "2": 400, "3": 424, "4": 201}

    too_many = [{"id": str(n), "method": "GET", "url": f"{user}/drive"} for n in range(21)]
    no_content_type = [{"id": "1", "method": "POST", "url": f"{user}/messages", "body": {}}]
    same_id = [
        {"id": "a", "method": "GET", "url": f"{user}/drive"},
        {"id": "A", "method": "GET", "url": "/x"},
    ]
    absolute = [{"id": "1", "method": "GET", "url": f"https://graph.microsoft.com/v1.0{user}/drive"}]
    for refused in (too_many, no_content_type, same_id, []):
        answer = http.post("/v1.0/$batch", json={"requests": refused})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "BadRequest"
    assert http.post("/v1.0/$batch", json={"requests": absolute}).json()["responses"][0]["status"] == 400


def test_a_fault_must_name_an_operation_the_emulator_serves(http: TestClient) -> None:
    refused = http.post("/_emulator/faults", json={"operation": "UpdateSubscriptions", "status": 400})
    assert refused.status_code == 400
    assert "UpdateSubscription" in refused.json()["error"] and "GetDrive" in refused.json()["error"]
    for operation in ("UpdateSubscription", "GetDrive", "GetChanges", "*"):
        assert http.post("/_emulator/faults", json={"operation": operation, "status": 500}).status_code == 201
