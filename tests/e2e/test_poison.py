"""Poison is not a dead end: the host poisons what keeps failing, the API says why, and a replay
brings the changes in without duplicating a row."""

from __future__ import annotations

import json
import uuid

from functions.core.resources import NOTIFICATIONS_POISON_QUEUE, NOTIFICATIONS_QUEUE
from functions.core.settings import StorageSettings
from functions.core.storage import Storage
from tests.e2e.conftest import SITE
from tests.helpers import wait_until


def poisoned(api, subscription_id: str) -> list[dict]:
    response = api.http.get("/api/poison")
    response.raise_for_status()
    return [m for m in response.json()["value"] if subscription_id in m.get("subscriptions", [])]


def test_a_message_that_keeps_failing_is_poisoned_listed_with_its_reason_and_replayed_once(
    api, emulator, new_list, stack
):
    subscription = api.create_subscription(SITE, new_list).json()
    # Five refusals in a row: the host retries the message four times, then poisons it.
    emulator.inject_fault("GetChanges", 400, times=5, path_contains=new_list)
    item = emulator.add_item(SITE, new_list, "stuck")

    [entry] = wait_until(lambda: poisoned(api, subscription["id"]), timeout=60, what="the message in poison")
    host_log = next(s for s in stack.services if s.name == "functions-host").log_tail(2000)
    assert "has reached MaxDequeueCount of 5" in host_log
    assert entry["attempts"] == 5
    assert "HTTP 400" in entry["firstFailure"]["reason"]
    assert entry["ageSeconds"] >= 0
    assert api.changes(subscription["id"]) == []
    health = api.get_subscription(subscription["id"]).json()["health"]
    assert health["consecutiveFailures"] == 5
    assert "HTTP 400" in health["lastFailure"]["reason"]
    assert "lastNotificationDateTime" not in health  # no notification has been read through yet

    replayed = api.http.post("/api/poison/replay")
    assert replayed.status_code == 200
    assert replayed.json()["replayed"] >= 1
    assert poisoned(api, subscription["id"]) == []
    changes = wait_until(lambda: api.changes(subscription["id"]), timeout=30, what="the replayed change")
    assert [(c["changeType"], c["itemId"]) for c in changes] == [("add", item)]
    health = wait_until(
        lambda: (
            (h := api.get_subscription(subscription["id"]).json()["health"]).get("lastNotificationDateTime")
            and h
        ),
        what="the health after the replay",
    )
    assert health["consecutiveFailures"] == 0 and "lastFailure" not in health
    assert health["lastNotificationDateTime"] == entry["receivedAt"]

    # The same notification once more (a second replay of a copy) writes nothing new.
    storage = Storage(StorageSettings(connection_string=stack.connection_string))
    again = {
        "id": uuid.uuid4().hex,
        "source": "sharepoint",
        "receivedAt": entry["receivedAt"],
        "notifications": [{"subscriptionId": subscription["id"], "resource": new_list, "siteUrl": SITE}],
    }
    storage.queue(NOTIFICATIONS_QUEUE).send_message(json.dumps(again))
    wait_until(
        lambda: f"(id {again['id']}," in stack.log_dir.joinpath("functions-host.log").read_text(),
        what="the worker's run for the copy",
    )
    assert api.changes(subscription["id"]) == changes


def test_a_message_that_is_not_ours_is_poisoned_at_once_and_not_retried(api, stack):
    storage = Storage(StorageSettings(connection_string=stack.connection_string))
    host_log = stack.log_dir.joinpath("functions-host.log")
    poisoned_before = host_log.read_text().count("poisoned: not a notification message")
    marker = f"not a notification message {uuid.uuid4()}"
    storage.queue(NOTIFICATIONS_QUEUE).send_message(marker)

    def copies_in_poison() -> int:
        poison = storage.queue(NOTIFICATIONS_POISON_QUEUE)
        return sum(m.content == marker for m in poison.peek_messages(max_messages=32))

    wait_until(copies_in_poison, timeout=60, what="the message in notifications-poison")
    assert copies_in_poison() == 1
    # One run, which poisoned it with the reason: not five that failed first.
    assert host_log.read_text().count("poisoned: not a notification message") == poisoned_before + 1
