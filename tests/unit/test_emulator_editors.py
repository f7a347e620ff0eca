"""Who wrote a SharePoint item, as the emulator says it: the change log's `Editor` and
`EditorEmailHint` (or nothing, as SharePoint often answers), and the item's `Editor` person field
through `GetItems` with `$expand`, refused as SharePoint refuses a person field selected bare."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from local.clients import EDITOR_CLIENT_ID
from local.m365.server import create_app

SITE = "/sites/editors"
VIEW = (
    "<View><ViewFields><FieldRef Name='Title'/><FieldRef Name='Editor'/></ViewFields>"
    "<Query><Where><In><FieldRef Name='ID'/><Values><Value Type='Counter'>1</Value>"
    "<Value Type='Counter'>2</Value></Values></In></Where></Query></View>"
)


@pytest.fixture
def http() -> Iterator[TestClient]:
    with TestClient(create_app(delivery_interval=3600)) as client:
        yield client


def token(http: TestClient, **grant: str) -> dict[str, str]:
    issued = http.post("/_emulator/token", json={"client_id": EDITOR_CLIENT_ID, **grant})
    return {"Authorization": f"Bearer {issued.json()['access_token']}"}


def two_items(http: TestClient) -> tuple[str, dict[str, str]]:
    """Item 1 by an app-only caller, item 2 by Ann (a delegated token)."""
    app = token(http)
    created = http.post(f"{SITE}/_api/web/lists", json={"Title": "Who", "BaseTemplate": 100}, headers=app)
    list_id = created.json()["Id"]
    items = f"{SITE}/_api/web/lists('{list_id}')/items"
    assert http.post(items, json={"Title": "by the app"}, headers=app).status_code == 201
    ann = token(http, user="Ann@contoso.com")
    assert http.post(items, json={"Title": "by Ann"}, headers=ann).status_code == 201
    return list_id, app


def changes(http: TestClient, list_id: str, headers: dict[str, str]) -> list[dict]:
    query = {"query": {"Item": True, "Add": True}}
    answer = http.post(f"{SITE}/_api/web/lists('{list_id}')/GetChanges", json=query, headers=headers)
    return answer.json()["value"]


def test_the_change_log_names_a_user_by_claim_and_email_and_an_app_by_its_id(http: TestClient) -> None:
    list_id, app = two_items(http)
    by_app, by_ann = changes(http, list_id, app)
    assert by_app["Editor"].startswith(f"i:0i.t|ms.sp.ext|{EDITOR_CLIENT_ID}@")
    assert "EditorEmailHint" not in by_app
    assert (by_ann["Editor"], by_ann["EditorEmailHint"]) == (
        "i:0#.f|membership|ann@contoso.com",
        "ann@contoso.com",
    )

    assert http.post("/_emulator/quirks", json={"omitChangeEditors": True}).status_code == 200
    assert all("Editor" not in c and "EditorEmailHint" not in c for c in changes(http, list_id, app))


def test_get_items_expands_the_editor_an_app_only_write_is_sharepoint_app(http: TestClient) -> None:
    list_id, app = two_items(http)
    url = f"{SITE}/_api/web/lists('{list_id}')/GetItems"
    plain = http.post(url, json={"query": {"ViewXml": VIEW}}, headers=app).json()["value"]
    assert [set(item) >= {"Id", "Title", "EditorId"} and "Editor" not in item for item in plain] == [
        True,
        True,
    ]

    expanded = http.post(
        url,
        params={"$select": "*,Editor/Name,Editor/EMail", "$expand": "Editor"},
        json={"query": {"ViewXml": VIEW}},
        headers=app,
    ).json()["value"]
    assert [item["Title"] for item in expanded] == ["by the app", "by Ann"]
    assert expanded[0]["Editor"] == {
        "Name": "i:0i.t|00000003-0000-0ff1-ce00-000000000000|app@sharepoint",
        "EMail": "",
    }
    assert expanded[1]["Editor"] == {"Name": "i:0#.f|membership|ann@contoso.com", "EMail": "ann@contoso.com"}


@pytest.mark.parametrize(
    ("select", "expand", "named"),
    [
        ("Editor", "Editor", "Editor"),  # a person field is never selected bare
        ("Editor/Name", None, "Editor"),  # its properties only with $expand
        ("Title", "Title", "Title"),  # only a lookup expands
    ],
)
def test_a_person_field_selected_as_sharepoint_refuses_it(http, select, expand, named) -> None:
    list_id, app = two_items(http)
    params = {"$select": select} | ({"$expand": expand} if expand else {})
    answer = http.post(
        f"{SITE}/_api/web/lists('{list_id}')/GetItems",
        params=params,
        json={"query": {"ViewXml": VIEW}},
        headers=app,
    )
    assert answer.status_code == 400
    message = answer.json()["odata.error"]["message"]["value"]
    assert message.startswith(f"The query to field '{named}' is not valid.")


def test_a_delegated_token_names_a_user_principal_name(http: TestClient) -> None:
    assert http.post("/_emulator/token", json={"user": "not a upn"}).status_code == 400
