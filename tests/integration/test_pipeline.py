"""subscribe -> item changes -> notification -> queue -> worker -> change log, for real."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import uuid

import azure.functions as func
import httpx
import pytest

from functions.core.sources.registry import Sources
from functions.core.sources.sharepoint import SHAREPOINT
from functions.core.worker import ListSyncFailed, parse_message
from tests.integration.conftest import SITE


def logged(services, subscription) -> list[tuple[str, int | str | None]]:
    page = services.change_log.view_page(services.subscriptions.get(subscription.id).scope, top=1000)
    return [(c.change_type.value, c.item_id) for c in page.changes]


def deliver_and_process(emulator, queue, services) -> int:
    emulator.deliver()
    bodies = queue.take_all()
    for body in bodies:
        services.worker.process_message(body)
    return len(bodies)


def test_item_changes_reach_the_change_log_in_order(services, emulator, queue, subscription, new_list):
    a = emulator.add_item(SITE, new_list, "a")
    b = emulator.add_item(SITE, new_list, "b")
    emulator.update_item(SITE, new_list, a, "a2")
    emulator.delete_item(SITE, new_list, b)
    c = emulator.add_item(SITE, new_list, "c")
    recycled = emulator.recycle_item(SITE, new_list, c)
    emulator.restore(SITE, recycled)

    assert deliver_and_process(emulator, queue, services) == 1
    assert logged(services, subscription) == [
        ("add", a),
        ("add", b),
        ("update", a),
        ("delete", b),
        ("add", c),
        ("delete", c),
        ("restore", c),
    ]


def test_the_same_notification_delivered_twice_writes_nothing_twice(
    services, emulator, queue, subscription, new_list, stack
):
    emulator.add_item(SITE, new_list, "a")
    emulator.add_item(SITE, new_list, "b")
    notification = {
        "value": [
            {
                "subscriptionId": subscription.id,
                "clientState": next(
                    s["clientState"] for s in emulator.subscriptions() if s["id"] == subscription.id
                ),
                "expirationDateTime": "2027-01-01T00:00:00.0000000Z",
                "resource": new_list,
                "tenantId": "t",
                "siteUrl": SITE,
                "webId": "w",
            }
        ]
    }
    for _ in range(2):
        response = httpx.post(f"{stack.functions_url}/api/notifications/sharepoint", json=notification)
        assert response.status_code == 202
    bodies = queue.take_all()
    assert len(bodies) == 2
    for body in bodies + bodies:  # and each queue message replayed once more
        services.worker.process_message(body)
    assert logged(services, subscription) == [("add", 1), ("add", 2)]


def test_a_replay_after_a_crash_before_the_checkpoint_moved_writes_no_duplicates(
    services, emulator, queue, subscription, new_list
):
    before = services.subscriptions.checkpoints.read(new_list, SHAREPOINT)
    emulator.add_item(SITE, new_list, "a")
    emulator.deliver()
    [body] = queue.take_all()
    services.worker.process_message(body)
    services.subscriptions.checkpoints.start(  # as if we died before advancing
        new_list,
        address=before.address,
        subscription_id=before.subscription_id,
        cursor=before.cursor,
        at=before.last_synced,
        source=SHAREPOINT,
    )

    services.worker.process_message(body)
    assert logged(services, subscription) == [("add", 1)]


def test_changes_are_read_page_by_page_until_a_short_page(services, emulator, queue, subscription, new_list):
    for n in range(5):
        emulator.add_item(SITE, new_list, f"item {n}")
    sharepoint = services.sharepoint
    paged_sharepoint = dataclasses.replace(
        sharepoint, reader=dataclasses.replace(sharepoint.reader, page_size=2)
    )
    paged = dataclasses.replace(
        services.worker, sources=Sources([paged_sharepoint, *list(services.sources)[1:]])
    )
    calls_before = emulator.calls("GetChanges")
    emulator.deliver()
    [body] = queue.take_all()
    report = paged.process_message(body)
    assert report.changes_written == 5
    assert emulator.calls("GetChanges") - calls_before == 3  # 2 + 2 + 1
    assert [item for _, item in logged(services, subscription)] == [1, 2, 3, 4, 5]


def test_a_throttled_get_changes_is_retried_after_retry_after(
    services, emulator, queue, subscription, new_list
):
    emulator.add_item(SITE, new_list, "a")
    emulator.inject_fault("GetChanges", 429, retry_after=1, times=1)
    calls_before = emulator.calls("GetChanges")
    assert deliver_and_process(emulator, queue, services) == 1
    assert emulator.calls("GetChanges") - calls_before == 2
    assert logged(services, subscription) == [("add", 1)]


def test_a_failure_leaves_the_checkpoint_where_it_was_and_the_retry_catches_up(
    services, emulator, queue, subscription, new_list
):
    checkpoint = services.subscriptions.checkpoints.read(new_list, SHAREPOINT).cursor
    emulator.add_item(SITE, new_list, "a")
    emulator.inject_fault("GetChanges", 400, times=1)
    emulator.deliver()
    [body] = queue.take_all()
    with pytest.raises(ListSyncFailed):
        services.worker.process_message(body)
    assert services.subscriptions.checkpoints.read(new_list, SHAREPOINT).cursor == checkpoint
    assert logged(services, subscription) == []

    failed = services.subscriptions.checkpoints.read(new_list, SHAREPOINT)
    assert failed.consecutive_failures == 1 and "HTTP 400" in (failed.last_failure or "")

    services.worker.process_message(body)  # the host's retry of the same message
    assert logged(services, subscription) == [("add", 1)]
    recovered = services.subscriptions.checkpoints.read(new_list, SHAREPOINT)
    assert recovered.consecutive_failures == 0 and recovered.last_failure is None
    assert recovered.last_notification == parse_message(body).received_at


def test_a_long_retry_after_puts_the_message_back_for_later_instead_of_failing_it(
    services, emulator, queue, subscription, new_list
):
    checkpoint = services.subscriptions.checkpoints.read(new_list, SHAREPOINT).cursor
    emulator.add_item(SITE, new_list, "a")
    emulator.inject_fault("GetChanges", 503, retry_after=45, times=1)
    emulator.deliver()
    [body] = queue.take_all()
    report = services.worker.process_message(body)  # no exception: no dequeue is burnt
    assert (report.deferred, report.deferred_seconds) == ([subscription.id], 46)
    assert services.subscriptions.checkpoints.read(new_list, SHAREPOINT).cursor == checkpoint
    # Put back, and invisible until SharePoint's Retry-After has passed.
    assert queue.take_all() == []
    assert queue.queue.get_queue_properties().approximate_message_count == 1


def test_two_workers_racing_on_one_list_write_each_change_once(
    services, emulator, queue, subscription, new_list
):
    for n in range(30):
        emulator.add_item(SITE, new_list, f"item {n}")
    emulator.deliver()
    [body] = queue.take_all()
    errors = []

    def work():
        try:
            services.worker.process_message(body)
        except Exception as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [item for _, item in logged(services, subscription)] == list(range(1, 31))
    assert services.subscriptions.checkpoints.read(new_list, SHAREPOINT).cursor == last_logged_token(
        services, subscription
    )


def last_logged_token(services, subscription) -> str | None:
    page = services.change_log.view_page(services.subscriptions.get(subscription.id).scope, top=1000)
    return page.changes[-1].change_token


def test_notifications_for_an_unknown_subscription_are_skipped_by_the_worker(services):
    body = (
        '{"source":"sharepoint","receivedAt":"2026-01-01T00:00:00Z","notifications":'
        '[{"subscriptionId":"gone","resource":"r","siteUrl":"/sites/x"}]}'
    )
    report = services.worker.process_message(body)
    assert report.unknown_subscriptions == ["gone"]


def test_a_storage_4xx_on_a_management_call_is_a_500_with_its_cause_logged(services, monkeypatch, caplog):
    """A table that does not exist (a deployment bug) is not an outage: no 503, no Retry-After."""
    from functions.api import subscriptions as api
    from functions.core import services as services_module

    missing = services.storage.table(f"missing{uuid.uuid4().hex[:8]}")
    monkeypatch.setattr(services.storage, "table", lambda name: missing)
    monkeypatch.setattr(services_module, "get_services", lambda: services)
    request = func.HttpRequest("GET", "http://localhost/api/subscriptions", body=b"")
    with caplog.at_level(logging.ERROR, logger="functions.core.errors"):
        response = api.list_subscriptions(request)
    assert response.status_code == 500
    assert json.loads(response.get_body())["error"]["code"] == "InternalError"
    assert "TableNotFound" in caplog.text
