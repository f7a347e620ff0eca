"""The SharePoint REST contract the service relies on, checked against the emulator always and
against a real tenant when one is configured (as moto does for AWS):

    M365_LIVE_SITE_URL=https://contoso.sharepoint.com/sites/x   a site the token may write to
    M365_LIVE_LIST_ID=<guid>                                     a scratch list on that site
    M365_LIVE_ACCESS_TOKEN=<bearer token for https://contoso.sharepoint.com/.default>
    M365_LIVE_NOTIFICATION_URL=https://...   optional: a public URL that echoes validation tokens

Without them the `live` cases are skipped; the emulator cases run in `make test`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from functions.core.outbound import UpstreamError, new_session
from functions.core.sources.sharepoint.change_tokens import parse_change_token
from functions.core.sources.sharepoint.client import (
    CHANGE_QUERY_FLAGS,
    ChangeTokenExpired,
    ChangeTokenRejected,
    ListRef,
    SharePointClient,
)
from local.clients import EmulatorClient

SITE = "/sites/contract"
NOMETADATA = "application/json;odata=nometadata"
_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


class StaticToken:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self) -> str:
        return self.token


class Target:
    """A list to test on, for either backend: the source, raw REST calls with the same token, a
    way to add an item, and a notification URL that answers SharePoint's validation (if any)."""

    def __init__(
        self,
        ref: ListRef,
        token: str,
        add_item: Callable[[str], int],
        notification_url: str | None,
    ) -> None:
        self.ref = ref
        self._session = new_session()
        self.source = SharePointClient(StaticToken(token), session=self._session)
        self.add_item = add_item
        self.notification_url = notification_url
        self._token = token

    def close(self) -> None:
        self._session.close()

    def call(self, method: str, path: str, json: Any = None, accept: str = NOMETADATA) -> requests.Response:
        """`path` below the list's `_api/web/lists('{id}')` URL, or absolute under the site."""
        url = path if path.startswith("http") else f"{self.ref.api_url}{path}"
        return self._session.request(
            method,
            url,
            json=json,
            timeout=30,
            headers={"Authorization": f"Bearer {self._token}", "Accept": accept},
        )


@pytest.fixture(params=["emulator", "live"])
def target(request, emulator_url, echo_url) -> Iterator[Target]:
    if request.param == "emulator":
        client = EmulatorClient(emulator_url)
        list_id = client.create_list(SITE, f"contract-{uuid.uuid4().hex[:8]}")
        token = client.http.post("/_emulator/token").json()["access_token"]
        emulated = Target(
            ListRef(f"{emulator_url}{SITE}", list_id),
            token,
            lambda title: client.add_item(SITE, list_id, title),
            echo_url,
        )
        yield emulated
        emulated.close()
        client.close()
        return
    site, live_list_id, live_token = (
        os.environ.get(name) for name in ("M365_LIVE_SITE_URL", "M365_LIVE_LIST_ID", "M365_LIVE_ACCESS_TOKEN")
    )
    if not (site and live_list_id and live_token):
        pytest.skip(
            "no live tenant configured (M365_LIVE_SITE_URL, M365_LIVE_LIST_ID, M365_LIVE_ACCESS_TOKEN)"
        )
    live = Target(
        ListRef(site.rstrip("/"), live_list_id.lower()),
        live_token,
        lambda title: live.call("POST", "/items", json={"Title": title}).json()["Id"],
        os.environ.get("M365_LIVE_NOTIFICATION_URL"),
    )
    yield live
    live.close()


def test_the_current_change_token_is_a_list_scoped_token(target):
    token = target.source.current_change_token(target.ref)
    parts = token.split(";")
    assert parts[:2] == ["1", "3"] and parts[2].lower() == target.ref.list_id
    parse_change_token(token)


def test_get_changes_returns_an_added_item_with_its_token_type_and_id(target):
    since = target.source.current_change_token(target.ref)
    item_id = target.add_item("contract")
    pages = list(target.source.fetch_changes(target.ref, since))
    changes = [change for page in pages for change in page]
    added = [c for c in changes if c.item_id == item_id]
    assert [c.change_type for c in added] == [1]
    assert parse_change_token(added[0].change_token.string_value) > parse_change_token(since)


def test_get_changes_pages_by_fetch_limit(target):
    since = target.source.current_change_token(target.ref)
    for n in range(3):
        target.add_item(f"page {n}")
    pages = list(target.source.fetch_changes(target.ref, since, page_size=2))
    assert [len(page) for page in pages] == [2, 1]


def test_field_values_come_with_the_items_editor_expanded(target):
    """The service's field read: CAML `In` on `ID`, `$select=*,Editor/Name,Editor/EMail` and
    `$expand=Editor`; the values of the view's fields and who last wrote each item."""
    first, second = target.add_item("fields one"), target.add_item("fields two")
    read = target.source.field_values(target.ref, [first, second, 999999], ["Title"])
    assert sorted(read) == [first, second]  # an item that does not exist is simply absent
    assert read[first].values == {"Title": "fields one"}
    editor = read[first].editor
    assert editor is not None and editor.name  # a claim: a user's, or SharePoint App's


def test_a_person_field_selected_bare_is_refused(target):
    answer = target.call(
        "POST", "/GetItems?$select=Editor", json={"query": {"ViewXml": "<View><RowLimit>1</RowLimit></View>"}}
    )
    assert answer.status_code == 400
    assert "The query to field 'Editor' is not valid" in answer.json()["odata.error"]["message"]["value"]


def test_an_unknown_list_is_a_404_in_sharepoints_error_shape(target):
    missing = ListRef(target.ref.site_url, str(uuid.uuid4()))
    with pytest.raises(UpstreamError) as caught:
        target.source.current_change_token(missing)
    assert caught.value.status == 404
    assert caught.value.code and caught.value.upstream_message


# --- GetChanges: what SharePoint refuses -------------------------------------------------------


def get_changes(target: Target, **query: Any) -> requests.Response:
    return target.call("POST", "/GetChanges", json={"query": query})


def error_code(response: requests.Response) -> str:
    return str(response.json()["odata.error"]["code"])


def test_change_query_has_no_row_limit(target):
    response = get_changes(target, Item=True, Add=True, RowLimit=10)
    assert response.status_code == 400
    assert "RowLimit" in response.json()["odata.error"]["message"]["value"]


def test_fetch_limit_is_at_most_2000(target):
    assert get_changes(target, Item=True, Add=True, FetchLimit=2000).status_code == 200
    assert get_changes(target, Item=True, Add=True, FetchLimit=2001).status_code == 400


def test_every_change_type_flag_the_service_sends_is_a_change_query_property(target):
    since = target.source.current_change_token(target.ref)
    response = get_changes(target, **CHANGE_QUERY_FLAGS, ChangeTokenStart={"StringValue": since})
    assert response.status_code == 200, response.text


def test_a_token_of_another_list_is_refused_as_such(target):
    parts = target.source.current_change_token(target.ref).split(";")
    parts[2] = str(uuid.uuid4())
    with pytest.raises(ChangeTokenRejected, match="-2130575173"):
        list(target.source.fetch_changes(target.ref, ";".join(parts)))


def test_a_malformed_token_is_refused_as_a_format_error(target):
    with pytest.raises(ChangeTokenRejected, match="FormatException"):
        list(target.source.fetch_changes(target.ref, "1;3;not-a-token"))


def test_a_token_older_than_the_change_log_is_refused_or_read_from_the_logs_start(target):
    """SharePoint refuses it with -2130575172; Online has also been seen to accept it (sp-dev-docs
    issue 10389). The service must handle both: the emulator's default is the documented one."""
    parts = target.source.current_change_token(target.ref).split(";")
    sixty_one_days_ago = datetime.now(UTC) - timedelta(days=61)
    parts[3] = str(int((sixty_one_days_ago - _DOTNET_EPOCH).total_seconds()) * 10_000_000)
    try:
        list(target.source.fetch_changes(target.ref, ";".join(parts)))
    except ChangeTokenExpired:
        return
    assert target.ref.site_url.startswith("https://"), "the emulator must refuse it unless told otherwise"


def test_odata_verbose_wraps_the_answer_in_d(target):
    response = target.call("GET", "?$select=Title", accept="application/json;odata=verbose")
    assert response.status_code == 200
    assert "Title" in response.json()["d"]


# --- subscriptions ----------------------------------------------------------------------------


def needs_notification_url(target: Target) -> str:
    if not target.notification_url:
        pytest.skip("set M365_LIVE_NOTIFICATION_URL to a public URL that echoes validation tokens")
    return target.notification_url


def test_a_subscription_is_validated_created_renewed_and_deleted(target):
    notification_url = needs_notification_url(target)
    expiry = (datetime.now(UTC) + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    created = target.call(
        "POST",
        "/subscriptions",
        json={
            "resource": target.ref.api_url,
            "notificationUrl": notification_url,
            "expirationDateTime": expiry,
            "clientState": "contract-state",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["clientState"] == "contract-state"
    subscription = f"/subscriptions('{body['id']}')"
    try:
        renew = (datetime.now(UTC) + timedelta(days=179)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert target.call("PATCH", subscription, json={"expirationDateTime": renew}).status_code == 204
        too_far = (datetime.now(UTC) + timedelta(days=180, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert target.call("PATCH", subscription, json={"expirationDateTime": too_far}).status_code == 400
    finally:
        assert target.call("DELETE", subscription).status_code == 204
    assert target.call("GET", subscription).status_code == 404


def test_patch_and_delete_of_an_unknown_subscription_are_404(target):
    unknown = f"/subscriptions('{uuid.uuid4()}')"
    renew = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert target.call("PATCH", unknown, json={"expirationDateTime": renew}).status_code == 404
    assert target.call("DELETE", unknown).status_code == 404


def test_a_subscription_without_an_expiry_lasts_180_days(target):
    notification_url = needs_notification_url(target)
    created = target.call(
        "POST", "/subscriptions", json={"resource": target.ref.api_url, "notificationUrl": notification_url}
    )
    assert created.status_code == 201, created.text
    try:
        expires = datetime.fromisoformat(created.json()["expirationDateTime"].replace("Z", "+00:00"))
        assert timedelta(days=179) < expires - datetime.now(UTC) <= timedelta(days=180)
    finally:
        target.call("DELETE", f"/subscriptions('{created.json()['id']}')")
