"""OneDrive and Outlook through Microsoft Graph, end to end: subscribe (both validations), change,
read the rows in GET /api/changes, survive each lifecycle event and an expired delta link."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import wait_until


def changes_of(api, subscription_id: str, count: int) -> list[dict]:
    return wait_until(
        lambda: (found := api.changes(subscription_id)) and len(found) >= count and found,
        timeout=60,
        what=f"{count} Graph change(s)",
    )


def kinds(changes: list[dict]) -> list[tuple]:
    return [(c["changeType"], c.get("sourceChangeType")) for c in changes]


@pytest.fixture
def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}@contoso.com"


def wait_reauthorized(emulator, subscription_id: str) -> None:
    def reauthorized() -> bool:
        [remote] = [s for s in emulator.graph_subscriptions() if s["id"] == subscription_id]
        return not remote["needsReauthorization"]

    wait_until(reauthorized, what="the reauthorization")


def wait_recreated(api, subscription_id: str) -> dict:
    def replacement() -> dict | None:
        listed = api.all_subscriptions()
        return next((s for s in listed if s.get("previousId") == subscription_id), None)

    return wait_until(replacement, what="the recreated subscription")


def subscribe(api, emulator, resource: str, change_type: str) -> dict:
    validations = emulator.calls("GraphValidateNotificationUrl")
    response = api.create_graph_subscription(resource, change_type)
    assert response.status_code == 201, response.text
    assert emulator.calls("GraphValidateNotificationUrl") == validations + 2  # change and lifecycle URLs
    body = response.json()
    assert (body["source"], body["resource"], body["changeType"]) == ("graph", resource, change_type)
    assert "clientState" not in response.text
    return body


def test_a_onedrive_folder_from_upload_to_delete_with_reauthorization_and_an_expired_link(
    api, emulator, user
):
    drive = emulator.drive_of(user)
    emulator.put_file(drive, "before/old.txt")  # history: never replayed
    subscription = subscribe(api, emulator, f"/drives/{drive}/root", "updated")
    [remote] = [s for s in emulator.graph_subscriptions() if s["id"] == subscription["id"]]
    assert remote["lifecycleNotificationUrl"].endswith("/api/notifications/graph/lifecycle")
    assert len(remote["clientState"]) <= 128

    file = emulator.put_file(drive, "docs/plan.txt", b"v1")
    changes = changes_of(api, subscription["id"], 2)  # the new folder and the file
    assert {c.get("fileName") for c in changes} == {"docs", "plan.txt"}
    # From the delta pages themselves ($select): name, size, folder, and who wrote it.
    [plan] = [c for c in changes if c.get("fileName") == "plan.txt"]
    assert plan["fields"] == {"name": "plan.txt", "size": 2, "parentPath": "/drive/root:/docs"}
    assert (plan["changedByKind"], plan["changedBy"]) == ("application", "app")
    assert all(c["source"] == "graph" and c["resource"] == f"/drives/{drive}/root" for c in changes)

    emulator.update_drive_item(drive, file["id"], name="plan-final.txt")
    changes = changes_of(api, subscription["id"], 3)
    assert (changes[-1]["changeType"], changes[-1]["fileName"]) == ("update", "plan-final.txt")

    # reauthorizationRequired: the service reauthorizes; notifications flow again.
    emulator.graph_lifecycle(subscription["id"], "reauthorizationRequired")
    wait_reauthorized(emulator, subscription["id"])
    emulator.delete_drive_item(drive, file["id"])
    changes = changes_of(api, subscription["id"], 4)
    assert kinds(changes)[-1] == ("delete", "deleted")

    # The delta link expires: the next round starts over from Location, with a resync entry.
    emulator.expire_delta_tokens()
    emulator.put_file(drive, "docs/after.txt")
    changes = changes_of(api, subscription["id"], 6)
    resync = [c for c in changes if c["changeType"] == "resync"]
    assert len(resync) == 1
    assert "410" in resync[0]["reason"]
    assert "after.txt" in {
        c.get("fileName") for c in changes if c.get("resync") and c["changeType"] == "update"
    }


def test_a_drive_change_graph_announces_hours_late_is_found_by_the_sweep(api, emulator, user, stack):
    """Graph may deliver a drive notification up to 6 hours late (2026-09): the sweep, which visits
    Graph scopes every GRAPH_SWEEP_MAX_AGE_HOURS, reads the change before it is announced."""
    drive = emulator.drive_of(user)
    subscription = subscribe(api, emulator, f"/drives/{drive}/root", "updated")
    emulator.delay_graph_notifications(6 * 3600, subscription["id"])
    try:
        emulator.put_file(drive, "late/news.txt")
        assert api.changes(subscription["id"]) == []  # no notification has come
        assert api.run_function("sweep_changes").status_code == 202
        changes = changes_of(api, subscription["id"], 2)  # the folder and the file
        assert "news.txt" in {c.get("fileName") for c in changes}
    finally:
        emulator.delay_graph_notifications(0, subscription["id"])


def test_an_outlook_inbox_with_missed_and_removed_subscription_events(api, emulator, user):
    emulator.send_to_folder(user, "inbox", "already there")  # history: never replayed
    resource = f"/users/{user}/mailFolders('inbox')/messages"
    subscription = subscribe(api, emulator, resource, "created,updated,deleted")

    message = emulator.send_to_folder(user, "inbox", "hello")
    changes = changes_of(api, subscription["id"], 1)
    assert [(c["changeType"], c["itemId"], c["subject"]) for c in changes] == [("add", message, "hello")]
    assert changes[0]["fields"]["subject"] == "hello" and changes[0]["fields"]["isRead"] is False

    emulator.update_outlook(user, "messages", message, isRead=True)
    changes_of(api, subscription["id"], 2)

    emulator.graph_lifecycle(subscription["id"], "reauthorizationRequired")
    wait_reauthorized(emulator, subscription["id"])

    # missed: Graph dropped notifications; the lifecycle event makes the service read anyway.
    emulator.graph_lifecycle(subscription["id"], "missed")
    emulator.delete_outlook(user, "messages", message)
    changes = changes_of(api, subscription["id"], 3)
    assert kinds(changes) == [("add", "created"), ("update", "updated"), ("delete", "deleted")]

    # subscriptionRemoved: recreated with a new clientState, same cursor and change log.
    emulator.graph_lifecycle(subscription["id"], "subscriptionRemoved")
    replacement = wait_recreated(api, subscription["id"])
    assert replacement["status"] == "recreated"
    later = emulator.send_to_folder(user, "inbox", "after the removal")
    changes = changes_of(api, replacement["id"], 4)
    assert changes[-1]["itemId"] == later

    # An expired Outlook delta token may answer 400 syncStateNotFound, without a Location: that
    # too starts the round over, with a resync entry.
    emulator.expire_delta_tokens(outlook_status=400, outlook_code="syncStateNotFound")
    emulator.send_to_folder(user, "inbox", "after the expiry")
    wait_until(
        lambda: any(c["changeType"] == "resync" for c in api.changes(replacement["id"])),
        what="the inbox's resync after a 400 syncStateNotFound",
    )
    # The reauthorization above was one renewing PATCH: never a reauthorize beside a PATCH.
    assert emulator.counters()["calls"].get("ReauthorizeAndPatchWithin10Minutes", 0) == 0


def test_a_calendar_through_every_lifecycle_event_and_an_expired_delta_link(api, emulator, user):
    subscription = subscribe(api, emulator, f"/users/{user}/events", "created,updated,deleted")
    event = emulator.create_event(user, "planning")
    changes_of(api, subscription["id"], 1)

    emulator.graph_lifecycle(subscription["id"], "reauthorizationRequired")
    wait_reauthorized(emulator, subscription["id"])
    emulator.update_outlook(user, "events", event, subject="planning (moved)")
    emulator.graph_lifecycle(subscription["id"], "missed")
    changes = wait_until(
        lambda: (
            (found := api.changes(subscription["id"]))
            and found[-1].get("subject") == "planning (moved)"
            and found
        ),
        what="the moved event",
    )
    assert changes[-1]["changeType"] == "update"

    # The calendar's delta link expires: Location carries the window to start over with.
    emulator.expire_delta_tokens()
    emulator.delete_outlook(user, "events", event)
    changes = wait_until(
        lambda: (
            (found := api.changes(subscription["id"]))
            and any(c["changeType"] == "resync" for c in found)
            and found
        ),
        what="the calendar's resync",
    )
    emulator.graph_lifecycle(subscription["id"], "subscriptionRemoved")
    replacement = wait_recreated(api, subscription["id"])
    later = emulator.create_event(user, "retro")
    changes = changes_of(api, replacement["id"], len(changes) + 1)
    assert changes[-1]["itemId"] == later


@pytest.mark.parametrize(
    ("resource", "change_type", "problem"),
    [
        ("/drives/b!x/root", "created", "changeType"),
        ("/users/u@contoso.com/messages", "created", "resource"),
        ("/sites/x", "updated", "resource"),
    ],
)
def test_a_graph_subscription_graph_would_refuse_is_refused_first(api, resource, change_type, problem):
    response = api.create_graph_subscription(resource, change_type)
    assert response.status_code == 400
    assert problem in response.json()["error"]["message"]


def test_the_graph_validation_token_is_echoed_url_decoded(stack):
    import httpx

    token = "Validation: Testing client application reachability for subscription Request-Id: 42"
    for path in ("/api/notifications/graph", "/api/notifications/graph/lifecycle"):
        response = httpx.post(f"{stack.functions_url}{path}", params={"validationToken": token})
        assert response.status_code == 200
        assert response.text == token
        assert response.headers["content-type"].startswith("text/plain")
