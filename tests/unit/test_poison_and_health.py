"""The poison queue and the health probe, in memory."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import ServiceRequestError

from functions.core.health import check_storage
from functions.core.resources import NOTIFICATIONS_QUEUE
from functions.core.storage import StorageUnavailable
from tests.fakes.world import World, world


def test_a_poisoned_message_is_listed_with_its_failures_and_replayed():
    env: World = world()
    body = env.notification("91779246-afe9-4525-b122-6c199ae89211")
    message_id = json.loads(body)["id"]
    env.services.poison.put(body)
    env.services.poison.put("not a message")
    listing = env.services.poison.list()
    assert listing.approximate_count == 2
    ours = [m for m in listing.messages if m.message_id == message_id]
    assert ours and ours[0].subscriptions == ["91779246-afe9-4525-b122-6c199ae89211"]
    assert env.services.poison.replay() == 2
    assert env.storage.queue(NOTIFICATIONS_QUEUE).visible() == [body, "not a message"]
    assert env.services.poison.list().approximate_count == 0


def test_the_health_probe_names_the_failure_without_detail():
    env = world()
    assert check_storage(env.storage) is None
    env.storage.fail(ServiceRequestError("connection refused"))
    assert check_storage(env.storage) == "ServiceRequestError"


def test_an_outage_while_reading_is_storage_unavailable_naming_what_was_read():
    env = world()
    env.storage.fail(ServiceRequestError("connection refused"))
    with pytest.raises(StorageUnavailable, match="reading subscription x"):
        env.services.subscriptions.get("x")
