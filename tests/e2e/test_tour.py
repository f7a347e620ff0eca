"""The tour `make demo` shows, as tests: subscribe, change items, read changes, renew, delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import SITE
from tests.helpers import wait_until

SUBSCRIPTION_FIELDS = {
    "id",
    "source",
    "siteUrl",
    "listId",
    "resource",
    "notificationUrl",
    "expirationDateTime",
    "status",
    "createdDateTime",
}


def test_the_whole_sharepoint_flow_over_http(api, emulator, new_list, stack):
    created = api.create_subscription(SITE, new_list)
    assert created.status_code == 201, created.text
    subscription = created.json()
    assert set(subscription) >= SUBSCRIPTION_FIELDS
    assert "clientState" not in created.text
    assert (subscription["source"], subscription["listId"], subscription["status"]) == (
        "sharepoint",
        new_list,
        "active",
    )
    assert subscription["notificationUrl"] == f"{stack.functions_url}/api/notifications/sharepoint"
    assert created.headers["location"] == f"/api/subscriptions/{subscription['id']}"

    fetched = api.get_subscription(subscription["id"]).json()
    assert {key: fetched[key] for key in subscription} == subscription
    assert fetched["health"]["sinks"] == 0
    assert subscription["id"] in [s["id"] for s in api.all_subscriptions()]

    first = emulator.add_item(SITE, new_list, "Draft the plan")
    second = emulator.add_item(SITE, new_list, "Book the room")
    emulator.update_item(SITE, new_list, first, "Draft the plan (v2)")
    emulator.delete_item(SITE, new_list, second)

    def four_changes():
        changes = api.changes(subscription["id"])
        return changes if len(changes) >= 4 else None

    changes = wait_until(four_changes, what="four changes in GET /api/changes")
    assert [(c["changeType"], c["itemId"]) for c in changes] == [
        ("add", first),
        ("add", second),
        ("update", first),
        ("delete", second),
    ]
    assert all(c["subscriptionId"] == subscription["id"] and c["listId"] == new_list for c in changes)
    assert api.changes(subscription["id"], top=1) == changes  # paged with nextLink, same result
    health = api.get_subscription(subscription["id"]).json()["health"]
    assert (health["sinks"], health["sinkStates"], health["consecutiveFailures"]) == (0, [], 0)
    token_age = datetime.now(UTC) - datetime.fromisoformat(health["changeTokenDateTime"])
    assert timedelta(0) <= token_age < timedelta(minutes=10)

    renewed = api.renew_subscription(subscription["id"])
    assert renewed.status_code == 200
    assert renewed.json()["lastRenewedDateTime"]

    assert api.delete_subscription(subscription["id"]).status_code == 204
    assert api.get_subscription(subscription["id"]).status_code == 404
    assert subscription["id"] not in [s["id"] for s in emulator.subscriptions()]


def test_the_renewal_timer_run_by_the_admin_api_renews_a_due_subscription(api, emulator, new_list):
    soon = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    subscription = api.create_subscription(SITE, new_list, expirationDateTime=soon).json()

    assert api.run_function("renew_subscriptions").status_code == 202

    def renewed_record():
        record = api.get_subscription(subscription["id"]).json()
        return record if record.get("lastRenewedDateTime") else None

    renewed = wait_until(renewed_record, what="the timer to renew the subscription")
    assert renewed["expirationDateTime"] > (datetime.now(UTC) + timedelta(days=170)).isoformat()
    remote = next(s for s in emulator.subscriptions() if s["id"] == subscription["id"])
    assert remote["expirationDateTime"] == renewed["expirationDateTime"]
