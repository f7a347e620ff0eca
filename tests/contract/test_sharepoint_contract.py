"""The SharePoint REST contract the service relies on, checked against the emulator always and
against a real tenant when one is configured (as moto does for AWS):

    M365_LIVE_SITE_URL=https://contoso.sharepoint.com/sites/x   a site the token may write to
    M365_LIVE_LIST_ID=<guid>                                     a scratch list on that site
    M365_LIVE_ACCESS_TOKEN=<bearer token for https://contoso.sharepoint.com/.default>

Without them the `live` cases are skipped; the emulator cases run in `make test`.
"""

from __future__ import annotations

import os
import uuid

import pytest

from functions.core.change_tokens import parse_change_token
from functions.core.outbound import UpstreamError, new_session
from functions.core.sources.sharepoint import ListRef, SharePointSource
from local.clients import EmulatorClient
from local.stack import Ports, Stack, free_port

SITE = "/sites/contract"


class StaticToken:
    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self) -> str:
        return self.token


class Target:
    """A list to test on, and a way to add an item to it, for either backend."""

    def __init__(self, source: SharePointSource, ref: ListRef, add_item) -> None:
        self.source = source
        self.ref = ref
        self.add_item = add_item


@pytest.fixture(scope="module")
def emulator_url():
    stack = Stack(ports=Ports(emulator=free_port()))
    try:
        stack.start_emulator()
        yield stack.emulator_url
    finally:
        stack.stop()


@pytest.fixture(params=["emulator", "live"])
def target(request, emulator_url) -> Target:
    if request.param == "emulator":
        client = EmulatorClient(emulator_url)
        list_id = client.create_list(SITE, f"contract-{uuid.uuid4().hex[:8]}")
        token = client.http.post("/_emulator/token").json()["access_token"]
        source = SharePointSource(StaticToken(token))
        return Target(
            source,
            ListRef(f"{emulator_url}{SITE}", list_id),
            lambda title: client.add_item(SITE, list_id, title),
        )
    site, live_list_id, live_token = (
        os.environ.get(name) for name in ("M365_LIVE_SITE_URL", "M365_LIVE_LIST_ID", "M365_LIVE_ACCESS_TOKEN")
    )
    if not (site and live_list_id and live_token):
        pytest.skip(
            "no live tenant configured (M365_LIVE_SITE_URL, M365_LIVE_LIST_ID, M365_LIVE_ACCESS_TOKEN)"
        )
    session = new_session()

    def add_live_item(title: str) -> int:
        response = session.post(
            f"{site}/_api/web/lists('{live_list_id}')/items",
            json={"Title": title},
            timeout=30,
            headers={"Authorization": f"Bearer {live_token}", "Accept": "application/json;odata=nometadata"},
        )
        response.raise_for_status()
        return response.json()["Id"]

    return Target(
        SharePointSource(StaticToken(live_token)),
        ListRef(site.rstrip("/"), live_list_id.lower()),
        add_live_item,
    )


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


def test_an_unknown_list_is_a_404_in_sharepoints_error_shape(target):
    missing = ListRef(target.ref.site_url, str(uuid.uuid4()))
    with pytest.raises(UpstreamError) as caught:
        target.source.current_change_token(missing)
    assert caught.value.status == 404
    assert caught.value.code and caught.value.upstream_message
