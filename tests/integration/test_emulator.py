"""The emulator's own rules where SharePoint's matter to the service: sites, ownership, reset."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from local.clients import EmulatorClient
from local.m365.tokens import DEFAULT_APP_ID


def token_for(emulator: EmulatorClient, client_id: str) -> str:
    return emulator.http.post("/_emulator/token", json={"client_id": client_id}).json()["access_token"]


def as_app(emulator: EmulatorClient, token: str, method: str, path: str, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json;odata=nometadata"}
    return emulator.http.request(method, path, headers=headers, **kwargs)


@pytest.mark.parametrize(
    "site", ["", "/sites/alpha", "/teams/beta", "/sites/alpha/sub", "/teams/beta/sub/deeper"]
)
def test_sites_live_at_the_root_under_sites_and_teams_and_below(emulator, site):
    list_id = emulator.create_list(site or "", f"list-{uuid.uuid4().hex[:6]}")
    item = emulator.add_item(site or "", list_id, "here")
    response = emulator.sharepoint("GET", f"{site}/_api/web/lists('{list_id}')/items({item})")
    assert response.status_code == 200
    assert response.json()["Title"] == "here"


def test_a_list_of_one_site_is_not_found_on_another(emulator):
    list_id = emulator.create_list("/sites/one", f"list-{uuid.uuid4().hex[:6]}")
    assert emulator.sharepoint("GET", f"/teams/one/_api/web/lists('{list_id}')").status_code == 404


def test_only_the_app_that_created_a_subscription_may_read_renew_or_delete_it(
    emulator, subscription, new_list
):
    other = token_for(emulator, "another-app")
    path = f"/sites/integration/_api/web/lists('{new_list}')/subscriptions('{subscription.id}')"
    assert as_app(emulator, other, "GET", path).status_code == 403
    assert (
        as_app(
            emulator, other, "PATCH", path, json={"expirationDateTime": "2030-01-01T00:00:00Z"}
        ).status_code
        == 403
    )
    assert as_app(emulator, other, "DELETE", path).status_code == 403
    listing = as_app(emulator, other, "GET", f"/sites/integration/_api/web/lists('{new_list}')/subscriptions")
    assert listing.json()["value"] == []
    own = token_for(emulator, DEFAULT_APP_ID)  # the service's app, which created it, still may
    assert as_app(emulator, own, "GET", path).status_code == 200


def test_documents_cannot_be_added_to_a_library_as_plain_items(emulator):
    library, _ = emulator.create_library("/sites/integration", f"Docs{uuid.uuid4().hex[:6]}")
    response = emulator.sharepoint(
        "POST", f"/sites/integration/_api/web/lists('{library}')/items", json={"Title": "x"}
    )
    assert response.status_code == 400
    assert "SPFileCollection.Add" in response.json()["odata.error"]["message"]["value"]


def test_reset_forgets_every_site_list_and_counter(stack):
    # A separate emulator instance would be cleaner, but reset is what tests use between runs.
    emulator = EmulatorClient(stack.emulator_url)
    list_id = emulator.create_list("/sites/reset", "to be forgotten")
    assert emulator.http.post("/_emulator/reset").status_code == 204
    assert emulator.sharepoint("GET", f"/sites/reset/_api/web/lists('{list_id}')").status_code == 404
    assert emulator.counters()["calls"] == {"GetList": 1}
    emulator.close()


def test_a_reauthorize_and_a_patch_within_ten_minutes_are_counted(emulator, stack):
    """Graph (2026-03): never both on one subscription within 10 minutes. The emulator serves
    both, as Graph does, and counts the pair for the service's tests to assert against."""
    user = f"ten-minutes-{uuid.uuid4().hex[:6]}@contoso.com"

    def create(expiry: str) -> httpx.Response:
        body = {
            "changeType": "updated",
            "notificationUrl": f"{stack.functions_url}/api/notifications/graph",
            "resource": f"/users/{user}/drive/root",
            "expirationDateTime": expiry,
        }
        return emulator.graph("POST", "/subscriptions", json=body)

    assert create("2099-01-01T00:00:00Z").status_code == 400  # past Graph's per-resource maximum
    expiry = (datetime.now(UTC) + timedelta(days=2)).isoformat()  # microseconds and an offset
    created = create(expiry)
    assert created.status_code == 201, created.text
    subscription = created.json()["id"]
    before = emulator.calls("ReauthorizeAndPatchWithin10Minutes")
    patched = emulator.graph("PATCH", f"/subscriptions/{subscription}", json={"expirationDateTime": expiry})
    assert patched.status_code == 200
    assert emulator.calls("ReauthorizeAndPatchWithin10Minutes") == before
    assert emulator.graph("POST", f"/subscriptions/{subscription}/reauthorize").status_code == 204
    assert emulator.calls("ReauthorizeAndPatchWithin10Minutes") == before + 1


def test_graph_answers_what_its_sdk_sends_and_every_error_in_json(emulator):
    """The forms msgraph-sdk writes: `delta()` functions, a user's own drive, item paths given as
    `root:/{path}:` item ids (percent-encoded), messages posted to the mailbox; errors as JSON."""
    user = f"sdk-{uuid.uuid4().hex[:6]}@contoso.com"
    drive = emulator.drive_of(user)
    uploaded = emulator.graph("PUT", f"/drives/{drive}/items/root:%2Fdocs%2Fa.txt:/content", content=b"a")
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["name"] == "a.txt"
    mine = emulator.graph("PUT", f"/users/{user}/drive/root:/docs/b.txt:/content", content=b"b")
    assert mine.status_code == 201, mine.text
    for path in (
        f"/drives/{drive}/root/delta()",
        f"/users/{user}/drive/root/delta",
        f"/drives/{drive}/items/root/delta()",
    ):
        names = {item.get("name") for item in emulator.graph("GET", path).json()["value"]}
        assert {"a.txt", "b.txt"} <= names, path
    draft = emulator.graph("POST", f"/users/{user}/messages", json={"subject": "draft"})
    assert draft.status_code == 201, draft.text
    inbox = emulator.graph("GET", f"/users/{user}/mailFolders('drafts')/messages/delta()")
    assert [m["subject"] for m in inbox.json()["value"]] == ["draft"]

    unknown = emulator.graph("GET", "/nothing/here")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "BadRequest"
    assert set(unknown.json()["error"]) == {"code", "message", "innerError"}
    wrong_method = emulator.graph("PUT", "/subscriptions")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_graph_without_a_token_says_how_to_get_one(emulator):
    answer = emulator.http.get("/v1.0/subscriptions")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer ")
    assert "00000003-0000-0000-c000-000000000000" in answer.headers["WWW-Authenticate"]
