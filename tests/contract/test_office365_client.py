"""The emulator's SharePoint, driven by `office365-rest-python-client` as a user's own app drives
SharePoint Online: the client as shipped, with only its base URL and token pointed at the emulator.
Verbose OData, the form digest, the function forms, `X-HTTP-Method` and `$batch` are all the
client's own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import requests
from office365.runtime.auth.token_response import TokenResponse
from office365.runtime.client_request_exception import ClientRequestException
from office365.sharepoint.changes.query import ChangeQuery
from office365.sharepoint.client_context import ClientContext
from office365.sharepoint.files.checkin_type import CheckinType
from office365.sharepoint.lists.creation_information import ListCreationInformation
from office365.sharepoint.lists.list import List
from office365.sharepoint.lists.templates.type import ListTemplateType

from local.m365.sharepoint.model import CHANGE_ADD, CHANGE_DELETE, CHANGE_RENAME, CHANGE_UPDATE


@pytest.fixture(scope="module")
def site_url(emulator_url: str) -> str:
    return f"{emulator_url}/sites/office365-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def ctx(emulator_url: str, site_url: str) -> ClientContext:
    token = requests.post(f"{emulator_url}/_emulator/token", json={}, timeout=10).json()
    return ClientContext(site_url).with_access_token(lambda: TokenResponse.from_json(token))


def new_list(ctx: ClientContext, template: int = ListTemplateType.GenericList) -> List:
    title = f"Tasks {uuid.uuid4().hex[:6]}"
    return ctx.web.lists.add(ListCreationInformation(title, None, template)).execute_query()


@pytest.fixture
def tasks(ctx: ClientContext) -> List:
    return new_list(ctx)


@pytest.fixture
def library(ctx: ClientContext) -> List:
    return new_list(ctx, ListTemplateType.DocumentLibrary)


def test_the_web_and_its_form_digest(ctx: ClientContext, site_url: str) -> None:
    web = ctx.web.get().execute_query()
    assert web.url == site_url
    assert (
        web.properties["ServerRelativeUrl"] == site_url.partition("/sites/")[1] + site_url.rpartition("/")[2]
    )
    new_list(ctx)  # a write: the client fetches a form digest first and sends it back
    assert ctx.pending_request().context_info.FormDigestValue.startswith("0x")


def test_lists_by_title_and_by_id(ctx: ClientContext, tasks: List) -> None:
    by_title = ctx.web.lists.get_by_title(tasks.title).get().execute_query()
    by_id = ctx.web.lists.get_by_id(tasks.id).get().execute_query()
    assert by_title.id == by_id.id == tasks.id
    assert by_id.properties["ListItemEntityTypeFullName"].startswith("SP.Data.Tasks")
    titles = [found.title for found in ctx.web.lists.get().execute_query()]
    assert tasks.title in titles
    with pytest.raises(ClientRequestException) as missing:
        ctx.web.lists.get_by_title("No such list").get().execute_query()
    assert missing.value.response.status_code == 404


def test_items_added_updated_paged_and_deleted(ctx: ClientContext, tasks: List) -> None:
    added = [tasks.add_item({"Title": f"item {n}"}).execute_query() for n in range(7)]
    first = tasks.get_item_by_id(added[0].id)
    first.set_property("Title", "renamed").update().execute_query()
    assert tasks.get_item_by_id(added[0].id).get().execute_query().properties["Title"] == "renamed"

    page = tasks.items.get().top(3).execute_query()
    assert len(page) == 3 and page.has_next
    assert [item.id for item in tasks.items.get_all(3).execute_query()] == [item.id for item in added]

    tasks.get_item_by_id(added[1].id).delete_object().execute_query()
    remaining = tasks.items.get_all().execute_query()
    assert added[1].id not in [item.id for item in remaining] and len(remaining) == 6
    with pytest.raises(ClientRequestException) as missing:
        tasks.get_item_by_id(added[1].id).get().execute_query()
    assert missing.value.response.status_code == 404


def change_types(changes) -> list[int]:
    return [change.change_type.value for change in changes]


def as_utc(value: str | datetime) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)


def test_changes_since_a_token_with_every_flag(ctx: ClientContext, tasks: List) -> None:
    token = tasks.get().select(["CurrentChangeToken"]).execute_query().properties["CurrentChangeToken"]
    item = tasks.add_item({"Title": "one"}).execute_query()
    item.set_property("Title", "two").update().execute_query()
    item.delete_object().execute_query()

    flags = [name for name, kind in ChangeQuery.__annotations__.items() if "bool" in kind]
    every_flag = {name: True for name in flags if name != "LatestFirst"}
    changes = tasks.get_changes(ChangeQuery(**every_flag, ChangeTokenStart=token)).execute_query()
    assert change_types(changes) == [CHANGE_ADD, CHANGE_UPDATE, CHANGE_DELETE]
    assert {change.properties["ItemId"] for change in changes} == {item.id}

    latest_first = tasks.get_changes(ChangeQuery(Item=True, LatestFirst=True, ChangeTokenStart=token))
    assert change_types(latest_first.execute_query()) == [CHANGE_DELETE, CHANGE_UPDATE, CHANGE_ADD]
    adds_only = ChangeQuery(Item=True, Update=False, DeleteObject=False, ChangeTokenStart=token)
    assert change_types(tasks.get_changes(adds_only).execute_query()) == [CHANGE_ADD]
    assert tasks.get_changes(ChangeQuery(Item=False, ChangeTokenStart=token)).execute_query().to_json() == []

    other = new_list(ctx)
    with pytest.raises(ClientRequestException) as foreign:
        other.get_changes(ChangeQuery(Item=True, ChangeTokenStart=token)).execute_query()
    assert foreign.value.response.status_code == 400


def test_subscriptions_added_read_renewed_and_removed(ctx: ClientContext, tasks: List, echo_url: str) -> None:
    expiry = datetime.now(timezone(timedelta(hours=2))).replace(microsecond=123456) + timedelta(days=30)
    added = tasks.subscriptions.add(f"{echo_url}/sharepoint", expiry).execute_query()
    assert added.notification_url == f"{echo_url}/sharepoint"

    found = tasks.subscriptions.get_by_id(added.id).get().execute_query()
    assert abs(as_utc(found.expiration_datetime) - as_utc(expiry)) < timedelta(seconds=1)
    assert [s.id for s in tasks.subscriptions.get().execute_query()] == [added.id]

    renewed_to = datetime.now(UTC) + timedelta(days=90)
    found.expiration_datetime = renewed_to
    found.update().execute_query()
    again = tasks.subscriptions.get_by_id(added.id).get().execute_query()
    assert abs(as_utc(again.expiration_datetime) - renewed_to) < timedelta(seconds=1)

    tasks.subscriptions.remove(added.id).execute_query()
    assert list(tasks.subscriptions.get().execute_query()) == []

    with pytest.raises(ClientRequestException) as too_long:
        tasks.subscriptions.add(
            f"{echo_url}/sharepoint", datetime.now(UTC) + timedelta(days=181)
        ).execute_query()
    assert too_long.value.response.status_code == 400


def test_a_file_uploaded_renamed_moved_checked_out_and_in_and_deleted(
    ctx: ClientContext, library: List
) -> None:
    root = library.root_folder.get().execute_query()
    uploaded = root.upload_file("report.txt", b"first draft").execute_query()
    assert uploaded.server_relative_url == f"{root.server_relative_url}/report.txt"
    content = (
        ctx.web.get_file_by_server_relative_url(uploaded.server_relative_url).get_content().execute_query()
    )
    assert content.value == b"first draft"

    uploaded.rename("final.txt").execute_query()
    renamed = (
        ctx.web.get_file_by_server_relative_url(f"{root.server_relative_url}/final.txt").get().execute_query()
    )
    assert renamed.name == "final.txt"

    archive = root.folders.add("Archive").execute_query()
    assert archive.server_relative_url == f"{root.server_relative_url}/Archive"
    renamed.moveto(archive, 1).execute_query()
    moved = ctx.web.get_file_by_server_relative_url(f"{archive.server_relative_url}/final.txt")
    moved.checkout().execute_query()
    with pytest.raises(ClientRequestException):
        moved.checkout().execute_query()
    moved.checkin("reviewed", CheckinType.MajorCheckIn).execute_query()
    assert [f.name for f in archive.files.get().execute_query()] == ["final.txt"]

    moved.delete_object().execute_query()
    with pytest.raises(ClientRequestException) as gone:
        ctx.web.get_file_by_server_relative_url(
            f"{archive.server_relative_url}/final.txt"
        ).get().execute_query()
    assert gone.value.response.status_code == 404

    changes = library.get_changes(ChangeQuery(Item=True, Rename=True, Move=True)).execute_query()
    assert CHANGE_RENAME in change_types(changes)


def test_folders(ctx: ClientContext, library: List) -> None:
    root = library.root_folder.get().execute_query()
    made = root.folders.add("Projects").execute_query()
    nested = made.folders.add("2026").execute_query()
    found = ctx.web.get_folder_by_server_relative_url(nested.server_relative_url).get().execute_query()
    assert found.name == "2026"
    with pytest.raises(ClientRequestException) as missing:
        ctx.web.get_folder_by_server_relative_url(f"{root.server_relative_url}/Nope").get().execute_query()
    assert missing.value.response.status_code == 404


def calls(emulator_url: str) -> dict[str, int]:
    return requests.get(f"{emulator_url}/_emulator/counters", timeout=10).json()["calls"]


def test_a_batch_of_writes_and_reads(ctx: ClientContext, tasks: List, emulator_url: str) -> None:
    before = calls(emulator_url)
    for n in range(3):
        tasks.add_item({"Title": f"batched {n}"})
    ctx.execute_batch()
    items = tasks.items.get().execute_query()
    assert sorted(item.properties["Title"] for item in items) == ["batched 0", "batched 1", "batched 2"]

    web = ctx.web.get()
    found = tasks.items.get()
    ctx.execute_batch()
    assert web.url and len(found) == 3
    after = calls(emulator_url)
    assert after.get("Batch", 0) > before.get("Batch", 0)
    assert after["AddItem"] - before["AddItem"] == 3
