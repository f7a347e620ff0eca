"""The notification URL over HTTP, as SharePoint (and anyone else on the internet) calls it."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from functions.core.intake import receive_notifications
from functions.core.models import NotificationMessage
from functions.core.queue_put import QueuePutFailed
from functions.core.services import Services
from functions.core.settings import Settings
from functions.core.storage import StorageUnavailable
from local.processes import free_port
from tests.integration.conftest import SITE


@pytest.fixture
def url(stack) -> str:
    return f"{stack.functions_url}/api/notifications/sharepoint"


@pytest.fixture
def entry(emulator, subscription, new_list) -> dict:
    client_state = next(s["clientState"] for s in emulator.subscriptions() if s["id"] == subscription.id)
    return {
        "subscriptionId": subscription.id,
        "clientState": client_state,
        "expirationDateTime": "2026-04-30T17:27:00.0000000Z",
        "resource": new_list,
        "tenantId": "00000000-0000-0000-0000-000000000000",
        "siteUrl": SITE,
        "webId": "dbc5a806-e4d4-46e5-951c-6344d70b62fa",
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_validation_token_is_echoed_as_plain_text(url, method):
    response = httpx.request(method, url, params={"validationtoken": "Validation: reachability <script>"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.text == "Validation: reachability <script>"


def test_a_hostile_validation_token_gets_400(url):
    assert httpx.post(url, params={"validationToken": "x" * 2000}).status_code == 400
    assert httpx.post(url, params={"validationtoken": "a\nb"}).status_code == 400


def test_a_good_notification_is_queued_once_and_answered_202(url, entry, queue):
    response = httpx.post(url, json={"value": [entry]})
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "rejected": 0}
    [body] = queue.take_all()
    assert (
        NotificationMessage.model_validate_json(body).notifications[0].subscription_id
        == entry["subscriptionId"]
    )


def test_a_wrong_client_state_or_unknown_subscription_is_still_202_but_never_queued(url, entry, queue):
    payload = {"value": [{**entry, "clientState": "guessed"}, {**entry, "subscriptionId": str(uuid.uuid4())}]}
    response = httpx.post(url, json=payload)
    assert (response.status_code, response.json()) == (202, {"accepted": 0, "rejected": 2})
    assert queue.take_all() == []


def test_a_mixed_batch_queues_only_the_good_entries_in_one_message(url, entry, queue):
    payload = {"value": [entry, {**entry, "clientState": None}, {"junk": True}, entry]}
    response = httpx.post(url, json=payload)
    assert response.json() == {"accepted": 2, "rejected": 2}
    [body] = queue.take_all()
    # The two good entries are the same entry: queued once, which is all the worker needs.
    assert len(NotificationMessage.model_validate_json(body).notifications) == 1


@pytest.mark.parametrize("content", [b"{oops", b'{"items": []}', b"[1, 2]", b'{"value": "x"}'])
def test_malformed_json_or_a_wrong_shape_is_400_with_a_short_json_error(url, content, queue):
    response = httpx.post(url, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message"}
    assert "Traceback" not in response.text
    assert queue.take_all() == []


def test_a_body_over_one_mebibyte_is_413(url):
    huge = json.dumps({"value": [{"pad": "x" * (1024 * 1024)}]})
    assert httpx.post(url, content=huge).status_code == 413


def test_storage_that_cannot_be_reached_is_reported_so_sharepoint_retries(stack, entry):
    dead = free_port()
    settings = Settings.from_environ(
        {
            **stack.app_settings(),
            "AzureWebJobsStorage": stack.connection_string.replace(str(stack.ports.table), str(dead)).replace(
                str(stack.ports.queue), str(dead)
            ),
        }
    )
    services = Services.from_settings(settings)
    with pytest.raises(StorageUnavailable):
        receive_notifications(
            json.dumps({"value": [entry]}).encode(),
            subscriptions=services.subscription_lookups["sharepoint"],
            queue=services.intake_queue,
            kind=services.sources.routes["sharepoint"],
        )


def test_a_put_that_fails_halfway_takes_back_what_it_already_put(services, queue):
    too_big_for_a_queue_message = "x" * (70 * 1024)
    # The queue refuses it with 413: a bug of ours, not an outage, so not StorageUnavailable.
    with pytest.raises(QueuePutFailed) as refused:
        services.intake_queue.put_all(iter(["first message", too_big_for_a_queue_message]))
    assert refused.value.status == 413 and not refused.value.is_outage
    assert queue.take_all() == []
