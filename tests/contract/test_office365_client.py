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


# --- each operation a new user tried, as the client sends it ---------------------------------


def test_lists_filtered_on_their_template(ctx: ClientContext, tasks: List, library: List) -> None:
    generic = ctx.web.lists.get().filter("BaseTemplate eq 100").execute_query()
    titles = [found.title for found in generic]
    assert tasks.title in titles and library.title not in titles
    both = ctx.web.lists.get().filter("BaseTemplate eq 100 or BaseTemplate eq 101").execute_query()
    assert {tasks.title, library.title} <= {found.title for found in both}


def test_an_item_by_id_from_the_items_collection(ctx: ClientContext, tasks: List) -> None:
    added = tasks.add_item({"Title": "by id"}).execute_query()
    found = tasks.items.get_by_id(added.id).get().execute_query()
    assert (found.id, found.properties["Title"]) == (added.id, "by id")


def test_an_item_read_from_a_listing_is_updated(ctx: ClientContext, tasks: List) -> None:
    tasks.add_item({"Title": "listed"}).execute_query()
    [listed] = tasks.items.get().execute_query()
    listed.set_property("Title", "listed, then updated").update().execute_query()
    [again] = tasks.items.get().execute_query()
    assert again.properties["Title"] == "listed, then updated"


def test_items_filtered_and_selected(ctx: ClientContext, tasks: List) -> None:
    for title in ("p1", "p2", "it's p3"):
        tasks.add_item({"Title": title}).execute_query()
    [found] = tasks.items.filter("Title eq 'p2'").select(["Title"]).get().execute_query()
    assert found.properties["Title"] == "p2" and "Created" not in found.properties
    quoted = tasks.items.filter("Title eq 'it''s p3'").get().execute_query()
    assert [item.properties["Title"] for item in quoted] == ["it's p3"]
    started = tasks.items.filter("startswith(Title,'p') and ID gt 1").get().execute_query()
    assert [item.properties["Title"] for item in started] == ["p2"]
    with pytest.raises(ClientRequestException) as unknown:
        tasks.items.filter("NoSuchField eq 1").get().execute_query()
    assert unknown.value.response.status_code == 400
    assert "The field or property 'NoSuchField' does not exist." in str(unknown.value)


def test_a_subscription_from_a_listing_is_renewed_by_id_as_sharepoint_requires(
    ctx: ClientContext, tasks: List, echo_url: str
) -> None:
    """The client keys a subscription read from a listing by `Id`, which SharePoint spells `id`:
    it sends `subscriptions(<key>)`, and SharePoint refuses that address (400, the expression is
    not valid), as the emulator does. Renewing through `get_by_id` is what works on both."""
    added = tasks.subscriptions.add(f"{echo_url}/sharepoint", datetime.now(UTC) + timedelta(days=30))
    added.execute_query()
    listed = next(iter(tasks.subscriptions.get().execute_query()))
    listed.expiration_datetime = datetime.now(UTC) + timedelta(days=60)
    with pytest.raises(ClientRequestException) as refused:
        listed.update().execute_query()
    assert refused.value.response.status_code == 400
    assert "InvalidClientQueryException" in str(refused.value) and "is not valid" in str(refused.value)

    renewed_to = datetime.now(UTC) + timedelta(days=60)
    by_id = tasks.subscriptions.get_by_id(listed.id)
    by_id.expiration_datetime = renewed_to
    by_id.update().execute_query()
    again = tasks.subscriptions.get_by_id(listed.id).get().execute_query()
    assert abs(as_utc(again.expiration_datetime) - renewed_to) < timedelta(seconds=1)
    tasks.subscriptions.remove(listed.id).execute_query()


def test_folders_added_ensured_and_found_by_url(ctx: ClientContext, library: List) -> None:
    root = library.root_folder.get().execute_query()
    sub = library.root_folder.folders.add("Sub").execute_query()
    assert sub.server_relative_url == f"{root.server_relative_url}/Sub"
    library_url = root.server_relative_url.rpartition("/")[2]
    ensured = ctx.web.ensure_folder_path(f"{library_url}/2026/Q4").execute_query()
    assert ensured.server_relative_url == f"{root.server_relative_url}/2026/Q4"
    again = ctx.web.ensure_folder_path(f"{library_url}/2026/Q4").execute_query()  # exists: given back
    assert again.server_relative_url == ensured.server_relative_url
    found = (
        ctx.web.get_folder_by_server_relative_url(f"{root.server_relative_url}/2026").get().execute_query()
    )
    assert found.name == "2026"
    assert (
        ctx.web.root_folder.get().execute_query().server_relative_url
        == root.server_relative_url.rpartition("/")[0]
    )


def test_a_file_moved_to_a_folder(ctx: ClientContext, library: List) -> None:
    root = library.root_folder.get().execute_query()
    uploaded = root.upload_file("move-me.txt", b"x").execute_query()
    target = root.folders.add("Target").execute_query()
    uploaded.moveto(target, 1).execute_query()
    moved = ctx.web.get_file_by_server_relative_url(f"{target.server_relative_url}/move-me.txt").get()
    assert moved.execute_query().name == "move-me.txt"
    with pytest.raises(ClientRequestException) as gone:
        ctx.web.get_file_by_server_relative_url(
            f"{root.server_relative_url}/move-me.txt"
        ).get().execute_query()
    assert gone.value.response.status_code == 404


def test_two_adds_in_one_batch(ctx: ClientContext, tasks: List) -> None:
    tasks.add_item({"Title": "first of two"})
    tasks.add_item({"Title": "second of two"})
    ctx.execute_batch()
    titles = sorted(item.properties["Title"] for item in tasks.items.get().execute_query())
    assert titles == ["first of two", "second of two"]


def test_an_item_keeps_its_versions_until_the_list_stops_keeping_them(
    ctx: ClientContext, tasks: List
) -> None:
    assert tasks.get().select(["EnableVersioning"]).execute_query().properties["EnableVersioning"] is True
    item = tasks.add_item({"Title": "Draft"}).execute_query()
    item.set_property("Title", "Approved").update().execute_query()
    versions = item.versions.get().execute_query()
    assert [
        (v.properties["VersionLabel"], v.properties["Title"], v.is_current_version) for v in versions
    ] == [
        ("2.0", "Approved", True),
        ("1.0", "Draft", False),
    ]

    tasks.set_property("EnableVersioning", False).update().execute_query()
    assert tasks.get().select(["EnableVersioning"]).execute_query().properties["EnableVersioning"] is False
    item.set_property("Title", "Done").update().execute_query()
    [only] = item.versions.get().execute_query()
    assert (only.properties["VersionLabel"], only.properties["Title"]) == ("3.0", "Done")
    with pytest.raises(ClientRequestException) as refused:
        tasks.set_property("NoSuchProperty", 1).update().execute_query()
    assert refused.value.response.status_code == 400
    assert "does not exist on type 'SP.List'" in str(refused.value)
