"""Graph rules the service applies itself: resources and change types, rows from delta items, and
which entries each Graph intake accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from functions.core.intake import CachedSubscriptionLookup, receive_notifications
from functions.core.scopes import RowScope
from functions.core.sources.graph import CHANGE_ENTRIES as GRAPH_CHANGE
from functions.core.sources.graph import LIFECYCLE_ENTRIES as GRAPH_LIFECYCLE
from functions.core.sources.graph.client import GraphResource, InvalidGraphResource
from functions.core.sources.graph.rows import change_row as graph_change_row
from tests.fakes.intake import SUB_1, MessageList, RecordLookup, record

SCOPE = RowScope(SUB_1, "graph", resource="/drives/b!x/root")

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/drives/b!abc-_1/root", "driveItem"),
        ("/users/alice@contoso.com/mailFolders('inbox')/messages", "message"),
        ("/users/0b5ea4c5/events", "event"),
    ],
)
def test_the_three_resources_are_recognised(path, kind):
    assert GraphResource.parse(path).kind == kind


@pytest.mark.parametrize(
    "path",
    [
        "/drives/x/root/children",
        "/users/a/messages",
        "/users/a/mailFolders('in box')/messages",
        "/sites/x",
        # Anything in a user part that would change the Graph URL it is pasted into:
        "/users/a?$select=x/events",
        "/users/a#b/events",
        "/users/../events",
        "/users/a..b@contoso.com/events",
        "/users/a%2Fb/events",
        "/users/a%2fb/mailFolders('inbox')/messages",
        "/users/a/b/events",
        "/users/alice@contoso.com/events?x=1",
        "/users/.alice/events",
    ],
)
def test_anything_else_is_refused(path):
    with pytest.raises(InvalidGraphResource):
        GraphResource.parse(path)


def test_a_resource_is_rebuilt_from_its_parts():
    resource = GraphResource.parse("/users/alice.smith+test@contoso.com/mailFolders('AAMk-1=')/messages")
    assert resource.path == "/users/alice.smith+test@contoso.com/mailFolders('AAMk-1=')/messages"
    assert GraphResource.parse("/users/0b5ea4c5-3c3b-4a0e-9a57-6f0c3c7b1d2e/events").kind == "event"


def test_change_types_follow_each_resources_rules():
    drive = GraphResource.parse("/drives/b!x/root")
    assert drive.check_change_type("updated") == "updated"
    with pytest.raises(InvalidGraphResource):
        drive.check_change_type("created,updated")
    inbox = GraphResource.parse("/users/a/mailFolders('inbox')/messages")
    assert inbox.check_change_type("deleted, created") == "created,deleted"
    with pytest.raises(InvalidGraphResource):
        inbox.check_change_type("created,created")


def test_a_delta_item_becomes_add_update_or_delete():
    created = {
        "id": "1",
        "name": "a.txt",
        "file": {},
        "createdDateTime": "2026-11-28T10:00:00Z",
        "lastModifiedDateTime": "2026-11-28T10:00:00Z",
    }
    updated = {**created, "lastModifiedDateTime": "2026-11-28T11:00:00Z"}
    assert graph_change_row(SCOPE, created, NOW, NOW)["changeType"] == "add"
    assert graph_change_row(SCOPE, updated, NOW, NOW)["changeType"] == "update"
    assert graph_change_row(SCOPE, updated, NOW, NOW)["fileName"] == "a.txt"
    assert (
        graph_change_row(SCOPE, {"id": "1", "deleted": {"state": "deleted"}}, NOW, NOW)["changeType"]
        == "delete"
    )
    assert (
        graph_change_row(SCOPE, {"id": "m", "@removed": {"reason": "deleted"}}, NOW, NOW)["sourceChangeType"]
        == "deleted"
    )


def test_the_same_state_read_twice_keys_the_same_row():
    item = {
        "id": "1",
        "createdDateTime": "2026-11-28T10:00:00Z",
        "lastModifiedDateTime": "2026-11-28T11:00:00Z",
    }
    first = graph_change_row(SCOPE, item, NOW, NOW)
    assert first["RowKey"] == graph_change_row(SCOPE, dict(item), NOW.replace(hour=13), NOW)["RowKey"]


def test_a_removal_read_twice_from_the_same_link_keys_the_same_row():
    removed = {"id": "m", "@removed": {"reason": "deleted"}}
    window = NOW.replace(hour=9)
    first = graph_change_row(SCOPE, removed, NOW, window)
    assert first["RowKey"] == graph_change_row(SCOPE, dict(removed), NOW.replace(hour=13), window)["RowKey"]


def graph_entry(**fields: str) -> dict[str, str]:
    return {"subscriptionId": SUB_1, "clientState": "secret-state", "tenantId": "t", **fields}


def receive(kind, *entries):
    queue = MessageList()
    lookup = CachedSubscriptionLookup(RecordLookup(record()))
    result = receive_notifications(
        json.dumps({"value": list(entries)}).encode(), subscriptions=lookup, queue=queue, kind=kind
    )
    return result, queue


def test_the_change_intake_takes_changes_only():
    result, queue = receive(
        GRAPH_CHANGE,
        graph_entry(changeType="updated", resource="drives/b!x/root"),
        graph_entry(lifecycleEvent="missed"),
    )
    assert (result.accepted, result.rejected) == (1, 1)
    assert json.loads(queue.messages[0])["source"] == "graph"


def test_the_lifecycle_intake_takes_lifecycle_events_only():
    result, queue = receive(
        GRAPH_LIFECYCLE,
        graph_entry(lifecycleEvent="subscriptionRemoved"),
        graph_entry(changeType="created"),
        graph_entry(lifecycleEvent="somethingElse"),
    )
    assert (result.accepted, result.rejected) == (1, 2)
    [queued] = json.loads(queue.messages[0])["notifications"]
    assert queued["lifecycleEvent"] == "subscriptionRemoved"
