"""Field-level changes on SharePoint subscriptions, in memory: which fields moved, from what to
what, read in one GetItems per page (per 500 items), and what a delete and a first sighting say."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from functions.core.change_log import row_to_view
from functions.core.sinks.payloads import adaptive_card_messages, webhook_body
from functions.core.sources.sharepoint.field_values import (
    ITEMS_PER_BUCKET,
    MAX_VALUE_CHARS,
    FieldValueStore,
    bounded,
)
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.subscriptions import SubscriptionRecord
from tests.fakes.storage import MemoryStorage
from tests.fakes.world import World, world

ADD, UPDATE, DELETE = 1, 2, 3


@pytest.fixture
def env() -> World:
    return world()


def subscribe(env: World, *fields: str) -> tuple[SubscriptionRecord, str]:
    list_id = env.sharepoint.create_list()
    record = env.services.subscriptions.create(
        CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id, fields=fields)
    )
    return record, list_id


def read(env: World, record: SubscriptionRecord) -> list[dict]:
    env.services.worker.process_message(env.notification(record.id))
    rows, _ = env.services.change_log.page(record.scope, after="", top=1000)
    return [row_to_view(row).model_dump(mode="json", by_alias=True, exclude_none=True) for row in rows]


def test_each_change_says_which_followed_fields_moved_from_what_to_what(env):
    record, list_id = subscribe(env, "Status", "Owner")
    item = env.sharepoint.change(list_id, ADD, Status="Draft", Owner="ann", Body="not followed")
    [added] = read(env, record)
    assert added["fields"] == {"Status": "Draft", "Owner": "ann"}
    assert added["changedFields"] == {
        "Status": {"before": None, "after": "Draft"},
        "Owner": {"before": None, "after": "ann"},
    }
    assert "fieldsBeforeUnknown" not in added

    env.sharepoint.change(list_id, UPDATE, item, Status="Approved")
    updated = read(env, record)[-1]
    assert updated["changedFields"] == {"Status": {"before": "Draft", "after": "Approved"}}
    assert updated["fields"] == {"Status": "Approved", "Owner": "ann"}

    env.sharepoint.change(list_id, UPDATE, item, Body="edited, but not a followed field")
    assert "changedFields" not in read(env, record)[-1]

    env.sharepoint.change(list_id, DELETE, item)
    deleted = read(env, record)[-1]
    assert deleted["changeType"] == "delete"
    assert deleted["fields"] == {"Status": "Approved", "Owner": "ann"}  # the last values read
    assert "changedFields" not in deleted


def test_a_page_read_again_writes_its_rows_the_same(env):
    """A retried message reads the same page again, after its field values were stored: the rows
    it writes again keep their differences."""
    record, list_id = subscribe(env, "Status")
    item = env.sharepoint.change(list_id, ADD, Status="Draft")
    read(env, record)
    checkpoints = env.services.subscriptions.checkpoints
    before_update = checkpoints.read(list_id, "sharepoint")
    env.sharepoint.change(list_id, UPDATE, item, Status="Approved")
    first = read(env, record)
    assert before_update is not None
    current = checkpoints.read(list_id, "sharepoint")
    assert current is not None
    checkpoints.replace(current, before_update.cursor, before_update.last_synced)  # as if it never moved
    again = read(env, record)
    assert again == first
    assert again[-1]["changedFields"] == {"Status": {"before": "Draft", "after": "Approved"}}


def first_seen_by_an_update(env: World, *, versioning: bool) -> dict:
    list_id = env.sharepoint.create_list()
    env.sharepoint.lists[list_id].enable_versioning = versioning
    item = env.sharepoint.change(list_id, ADD, Status="Draft")  # before the subscription
    record = env.services.subscriptions.create(
        CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id, fields=("Status",))
    )
    env.sharepoint.change(list_id, UPDATE, item, Status="Review")
    [first] = read(env, record)
    return first


def test_an_item_first_seen_by_an_update_takes_its_before_from_the_version_before(env):
    first = first_seen_by_an_update(env, versioning=True)
    assert first["changedFields"] == {"Status": {"before": "Draft", "after": "Review"}}
    assert first["fieldsFrom"] == "versions" and "fieldsBeforeUnknown" not in first


def test_without_versions_an_item_first_seen_by_an_update_says_its_earlier_values_are_unknown(env):
    first = first_seen_by_an_update(env, versioning=False)
    assert first["fieldsBeforeUnknown"] is True and first["fieldsFrom"] == "reads"
    assert first["fields"] == {"Status": "Review"}
    assert "changedFields" not in first


def several_changes_in_one_page(env: World, *, versioning: bool) -> list[dict]:
    record, list_id = subscribe(env, "Status")
    env.sharepoint.lists[list_id].enable_versioning = versioning
    item = env.sharepoint.change(list_id, ADD, Status="Draft")
    env.sharepoint.change(list_id, UPDATE, item, Status="Review")
    env.sharepoint.change(list_id, UPDATE, item, Status="Approved")
    return read(env, record)


def test_several_changes_of_one_item_in_one_page_each_have_their_own_before_and_after(env):
    rows = several_changes_in_one_page(env, versioning=True)
    assert [row["changedFields"] for row in rows] == [
        {"Status": {"before": None, "after": "Draft"}},
        {"Status": {"before": "Draft", "after": "Review"}},
        {"Status": {"before": "Review", "after": "Approved"}},
    ]
    assert [row["fields"] for row in rows] == [{"Status": s} for s in ("Draft", "Review", "Approved")]
    assert {row["fieldsFrom"] for row in rows} == {"versions"}


def test_several_changes_in_one_page_read_their_versions_in_one_batch(env):
    record, list_id = subscribe(env, "Status")
    once = [env.sharepoint.change(list_id, ADD, Status="New") for _ in range(20)]
    for item in once[:2]:  # 10%: edited twice in the page
        env.sharepoint.change(list_id, UPDATE, item, Status="Done")
    batches = env.sharepoint.count("/_api/$batch")
    rows = read(env, record)
    assert env.sharepoint.count("/_api/$batch") - batches == 1
    assert len([row for row in rows if row.get("fieldsFrom") == "versions"]) == 4  # 2 items, 2 changes each


def test_without_versions_several_changes_in_one_page_show_one_difference_on_the_last(env):
    rows = several_changes_in_one_page(env, versioning=False)
    assert [row.get("changedFields") for row in rows] == [
        None,
        None,
        {"Status": {"before": None, "after": "Approved"}},  # the item was added in this page
    ]
    assert all(row["fields"] == {"Status": "Approved"} for row in rows)  # read when the page was
    assert {row["fieldsFrom"] for row in rows} == {"reads"}


def test_a_page_of_items_is_read_in_one_request_per_500_items(env):
    record, list_id = subscribe(env, "Status")
    for _ in range(700):
        env.sharepoint.change(list_id, ADD, Status="New")
    before = env.sharepoint.count("/GetItems")
    rows = read(env, record)
    assert len(rows) == 700 and all(row["fields"] == {"Status": "New"} for row in rows)
    assert env.sharepoint.count("/GetItems") - before == 2  # 700 items: 500 + 200


def test_a_subscription_without_fields_reads_none(env):
    record, list_id = subscribe(env)
    env.sharepoint.change(list_id, ADD, Status="Draft")
    [row] = read(env, record)
    assert "fields" not in row and env.sharepoint.count("/GetItems") == 0


def test_the_fields_are_kept_on_the_subscription_and_shown(env):
    record, _ = subscribe(env, "Status")
    stored = env.services.subscriptions.get(record.id)
    assert stored.fields == ("Status",)


@pytest.mark.parametrize(
    "fields",
    [["Status"] * 2, [f"F{n}" for n in range(21)], ["Bad name"], ["x' or 1=1"], ["<FieldRef/>"]],
    ids=["twice", "21", "space", "quote", "markup"],
)
def test_field_names_must_be_up_to_20_distinct_internal_names(fields):
    body = {"siteUrl": "/sites/team", "listId": "b9f6f714-9df8-470b-b22e-653855e1c181", "fields": fields}
    with pytest.raises(ValidationError):
        CreateSubscriptionRequest.model_validate_json(json.dumps(body))


def test_a_card_says_status_draft_to_approved_and_the_webhook_body_carries_both(env):
    record, list_id = subscribe(env, "Status")
    item = env.sharepoint.change(list_id, ADD, Status="Draft")
    read(env, record)
    env.sharepoint.change(list_id, UPDATE, item, Status="Approved")
    read(env, record)
    rows, _ = env.services.change_log.page(record.scope, after="", top=10)
    changes = [row_to_view(row) for row in rows]
    [card] = adaptive_card_messages(changes)
    assert "Status: Draft → Approved" in json.dumps(card, ensure_ascii=False)
    body = json.loads(webhook_body("b1", changes, datetime.now(UTC)))
    assert body["changes"][-1]["changedFields"] == {"Status": {"before": "Draft", "after": "Approved"}}
    assert body["changes"][-1]["fields"] == {"Status": "Approved"}


def test_two_readers_writing_one_bucket_both_keep_their_values():
    """A reader whose read lease was taken over still writes: the ETag makes it merge, not clobber."""
    store = FieldValueStore(MemoryStorage())
    first, second = store.read("list", [1, 2]), store.read("list", [1, 2])
    store.write("list", {1: {"Status": "one"}}, first)
    store.write("list", {2: {"Status": "two"}}, second)  # read before the first write
    [bucket] = store.read("list", [1, 2]).values()
    assert bucket.values == {1: {"Status": "one"}, 2: {"Status": "two"}}


def test_long_values_are_cut_so_a_full_bucket_of_20_fields_fits_an_entity():
    store = FieldValueStore(MemoryStorage())
    names = [f"Field_x0020_{n:02d}" for n in range(20)]
    full = bounded(dict.fromkeys(names, "é" * 5000))
    values = {item_id: {"values": full, "before": full, "read": "x"} for item_id in range(ITEMS_PER_BUCKET)}
    store.write("list", values, store.read("list", values))
    [bucket] = store.read("list", values).values()
    assert bucket.values[7]["values"][names[3]] == "é" * MAX_VALUE_CHARS + "…"
    stored = json.dumps({str(k): v for k, v in values.items()}, ensure_ascii=False)
    assert len(stored.encode("utf-16-le")) < 1024 * 1024  # an entity's limit, counted as UTF-16


ANN = ("i:0#.f|membership|ann@contoso.com", "ann@contoso.com")
APP = ("i:0i.t|ms.sp.ext|6731de76-14a6-49ae-97bc-6eba6914391e@9188040d-6c67-4c5b-b112-36a304b66dad", None)


def test_where_the_change_log_names_no_editor_the_items_editor_read_with_the_fields_does(env):
    record, list_id = subscribe(env, "Status")
    env.sharepoint.lists[list_id].log_names_editors = False  # as SharePoint often answers
    by_ann = env.sharepoint.change(list_id, ADD, Status="Draft", editor=ANN)
    by_app = env.sharepoint.change(list_id, ADD, Status="Draft", editor=APP)
    rows = read(env, record)
    assert (rows[0]["itemId"], rows[0]["changedBy"], rows[0]["changedByKind"]) == (
        by_ann,
        "ann@contoso.com",
        "user",
    )
    assert rows[0]["changedBySource"] == "item"
    # An app-only write is "SharePoint App" on the item: which app, only the change log says.
    assert rows[1]["itemId"] == by_app and rows[1]["changedByKind"] == "application"
    assert rows[1]["changedBy"] == "i:0i.t|00000003-0000-0ff1-ce00-000000000000|app@sharepoint"

    env.sharepoint.lists[list_id].log_names_editors = True
    env.sharepoint.change(list_id, UPDATE, by_ann, Status="Review", editor=ANN)
    logged = read(env, record)[-1]
    assert logged["changedBy"] == "ann@contoso.com" and "changedBySource" not in logged


def test_with_versions_each_change_names_the_editor_of_the_version_it_made(env):
    record, list_id = subscribe(env, "Status")
    env.sharepoint.lists[list_id].log_names_editors = False
    item = env.sharepoint.change(list_id, ADD, Status="Draft", editor=APP)
    env.sharepoint.change(list_id, UPDATE, item, Status="Review", editor=ANN)
    first, last = read(env, record)
    assert (first["changedBy"], first["changedByKind"], first["changedBySource"]) == (
        "SharePoint App",
        "application",
        "version",
    )
    assert (last["changedBy"], last["changedByKind"], last["changedBySource"]) == (
        "ann@contoso.com",
        "user",
        "version",
    )


def test_without_versions_the_items_editor_goes_only_on_its_last_change_in_the_page(env):
    record, list_id = subscribe(env, "Status")
    env.sharepoint.lists[list_id].log_names_editors = False
    env.sharepoint.lists[list_id].enable_versioning = False
    item = env.sharepoint.change(list_id, ADD, Status="Draft", editor=APP)
    env.sharepoint.change(list_id, UPDATE, item, Status="Review", editor=ANN)
    first, last = read(env, record)
    assert "changedBy" not in first  # who made the add is not known: the item says who wrote last
    assert last["changedBy"] == "ann@contoso.com"
