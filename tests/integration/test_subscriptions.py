"""Creating, renewing and deleting subscriptions against the emulator, with real table storage."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError

from functions.core.models import SubscriptionStatus
from functions.core.outbound import UpstreamError
from functions.core.sources.registry import Sources
from functions.core.sources.sharepoint import SHAREPOINT
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.sources.sharepoint.subscriber import MAX_LIFETIME
from functions.core.storage import StorageUnavailable
from functions.core.subscriptions import (
    InvalidSubscriptionRequest,
    SubscriptionConflict,
    hash_client_state,
)
from tests.integration.conftest import SITE


def at_sharepoint(emulator, subscription_id):
    return next((s for s in emulator.subscriptions() if s["id"] == subscription_id), None)


def every_subscription(services) -> list:
    records, after = [], ""
    while True:
        page, after = services.subscriptions.page(after=after, top=1000)
        records += page
        if after is None:
            return records


def test_a_new_subscription_gets_a_strong_client_state_that_only_its_hash_is_stored_for(
    services, emulator, subscription
):
    remote = at_sharepoint(emulator, subscription.id)
    assert len(remote["clientState"]) >= 43  # 32 random bytes, URL-safe base64
    assert subscription.client_state_hash == hash_client_state(remote["clientState"])
    stored = services.subscriptions.store.get(subscription.id)
    assert stored == subscription
    assert remote["notificationUrl"].endswith("/api/notifications/sharepoint")


def test_a_new_subscription_reads_changes_from_now_not_the_lists_history(services, emulator, queue, new_list):
    before = emulator.add_item(SITE, new_list, "before the subscription")
    record = services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=new_list))
    after = emulator.add_item(SITE, new_list, "after the subscription")
    emulator.deliver()
    for body in queue.take_all():
        services.worker.process_message(body)
    page = services.change_log.view_page(services.subscriptions.get(record.id).scope)
    assert [c.item_id for c in page.changes] == [after]
    assert before not in [c.item_id for c in page.changes]
    assert record.status is SubscriptionStatus.ACTIVE


def test_a_second_subscription_for_the_same_list_is_a_conflict(services, subscription, new_list):
    with pytest.raises(SubscriptionConflict):
        services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=new_list))


def test_a_list_that_does_not_exist_is_sharepoints_404(services):
    with pytest.raises(UpstreamError) as caught:
        services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=uuid.uuid4()))
    assert caught.value.status == 404


def test_sharepoint_refuses_a_notification_url_that_does_not_echo_the_token(services, new_list):
    sharepoint = services.sharepoint
    unreachable_url = "http://127.0.0.1:9/api/notifications/sharepoint"
    subscriber = dataclasses.replace(sharepoint.subscriber, notification_url=unreachable_url)
    unreachable = dataclasses.replace(
        services.subscriptions, sources=Sources([dataclasses.replace(sharepoint, subscriber=subscriber)])
    )
    with pytest.raises(UpstreamError) as caught:
        unreachable.create(CreateSubscriptionRequest(site_url=SITE, list_id=new_list))
    assert caught.value.status == 400
    assert caught.value.upstream_message == (
        "Failed to validate the notification URL 'http://127.0.0.1:9/api/notifications/sharepoint'."
    )
    assert [r for r in every_subscription(services) if r.scope == new_list] == []
    # The list's claim was released: a later create may succeed.
    services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=new_list))


@pytest.mark.parametrize(
    "request_body",
    [
        {"siteUrl": "https://fabrikam.sharepoint.com/sites/x"},
        {"siteUrl": "/sites/x?evil=1"},
        {"expirationDateTime": datetime.now(UTC) - timedelta(days=1)},
        {"expirationDateTime": datetime.now(UTC) + MAX_LIFETIME + timedelta(days=1)},
    ],
)
def test_requests_sharepoint_would_refuse_are_refused_first(services, new_list, request_body):
    fields = {"site_url": SITE, "list_id": new_list}
    if "siteUrl" in request_body:
        fields["site_url"] = request_body["siteUrl"]
    if "expirationDateTime" in request_body:
        fields["expiration_date_time"] = request_body["expirationDateTime"]
    with pytest.raises(InvalidSubscriptionRequest):
        services.subscriptions.create(CreateSubscriptionRequest(**fields))


def test_renewal_touches_only_the_subscriptions_that_are_due(services, emulator, emulator_list_factory):
    due_list, later_list = emulator_list_factory(), emulator_list_factory()
    soon = datetime.now(UTC) + timedelta(days=10)
    due = services.subscriptions.create(
        CreateSubscriptionRequest(site_url=SITE, list_id=due_list, expiration_date_time=soon)
    )
    later = services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=later_list))
    patches_before = emulator.calls("UpdateSubscription")

    report = services.renewals.renew_due(timedelta(days=45))

    assert due.id in report.renewed
    assert later.id not in report.renewed
    renewed_at_sharepoint = at_sharepoint(emulator, due.id)["expirationDateTime"]
    assert renewed_at_sharepoint > (datetime.now(UTC) + timedelta(days=179)).strftime("%Y-%m-%dT%H")
    assert emulator.calls("UpdateSubscription") - patches_before == len(report.renewed)
    assert services.subscriptions.get(due.id).last_renewed is not None
    assert services.subscriptions.get(later.id).last_renewed is None


def test_renewal_runs_several_at_once_and_renews_each_due_subscription_once(
    services, emulator, emulator_list_factory
):
    now = datetime.now(UTC)
    due = [
        services.subscriptions.create(
            CreateSubscriptionRequest(
                site_url=SITE,
                list_id=emulator_list_factory(),
                expiration_date_time=now + timedelta(days=5 + i),
            )
        ).id
        for i in range(6)
    ]
    patches_before = emulator.calls("UpdateSubscription")

    report = services.renewals.renew_due(timedelta(days=45), concurrency=4)

    assert set(due) <= set(report.renewed) and len(report.renewed) == len(set(report.renewed))
    assert report.failed == [] and report.left_for_next_run == []
    assert emulator.calls("UpdateSubscription") - patches_before == len(report.renewed)


def test_a_renewal_run_past_its_deadline_starts_nothing_and_leaves_the_soonest_first(
    services, emulator, emulator_list_factory
):
    now = datetime.now(UTC)
    later, sooner = (
        services.subscriptions.create(
            CreateSubscriptionRequest(
                site_url=SITE,
                list_id=emulator_list_factory(),
                expiration_date_time=now + timedelta(days=days),
            )
        ).id
        for days in (20, 3)
    )
    patches_before = emulator.calls("UpdateSubscription")

    report = services.renewals.renew_due(timedelta(days=45), deadline=now)

    mine = [sid for sid in report.left_for_next_run if sid in (later, sooner)]
    assert mine == [sooner, later]
    assert report.renewed == [] and emulator.calls("UpdateSubscription") == patches_before


def test_a_subscription_sharepoint_forgot_is_recreated_and_no_change_is_missed(
    services, emulator, queue, subscription, new_list
):
    emulator.add_item(SITE, new_list, "while subscribed")
    emulator.deliver()
    for body in queue.take_all():
        services.worker.process_message(body)
    emulator.drop_subscription(subscription.id)
    emulator.add_item(SITE, new_list, "while nobody listened")
    assert emulator.deliver()["requests"] == 0

    replacement = services.renewals.renew(subscription.id)

    assert replacement.id != subscription.id
    assert (replacement.status, replacement.previous_id) == (SubscriptionStatus.RECREATED, subscription.id)
    assert services.subscriptions.store.get(subscription.id) is None
    assert at_sharepoint(emulator, replacement.id) is not None
    emulator.add_item(SITE, new_list, "after recreation")
    emulator.deliver()
    for body in queue.take_all():
        services.worker.process_message(body)
    page = services.change_log.view_page(services.subscriptions.get(replacement.id).scope)
    assert [c.item_id for c in page.changes] == [1, 2, 3]


def test_a_subscription_that_lapsed_at_sharepoint_is_recreated_by_the_renewal_run(
    services, emulator, subscription
):
    emulator.advance_clock(181 * 86400)
    try:
        assert at_sharepoint(emulator, subscription.id) is None
    finally:
        emulator.advance_clock(-181 * 86400)
    store = services.subscriptions.store
    store.save(
        store.get(subscription.id).renewed(datetime.now(UTC) + timedelta(days=1), subscription.created)
    )

    report = services.renewals.renew_due(timedelta(days=45))

    assert subscription.id in [old for old, _ in report.recreated]


def test_deleting_removes_the_subscription_here_and_at_sharepoint(services, emulator, subscription, new_list):
    leases = services.subscriptions.read_leases
    services.worker.reads.read(subscription.source, subscription.scope, None, lambda: "read")
    assert leases.read(subscription.scope, subscription.source).etag is not None

    services.subscriptions.delete(subscription.id)
    assert at_sharepoint(emulator, subscription.id) is None
    assert services.subscriptions.store.get(subscription.id) is None
    assert services.subscriptions.checkpoints.read(new_list, SHAREPOINT) is None
    assert leases.read(subscription.scope, subscription.source).etag is None


@pytest.fixture
def emulator_list_factory(emulator):
    return lambda: emulator.create_list(SITE, f"list-{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize(
    "failure",
    [StorageUnavailable("table service timed out"), HttpResponseError("refused")],
    ids=["outage", "bug"],
)
def test_a_subscription_that_cannot_be_stored_is_taken_back_at_sharepoint(
    services, emulator, new_list, monkeypatch, failure
):
    def failing_save(record):
        raise failure

    monkeypatch.setattr(services.subscriptions.store, "save", failing_save)
    with pytest.raises(type(failure)):
        services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=new_list))
    # Nothing here could renew or delete it, so nothing may be left at SharePoint either.
    assert emulator.calls("DeleteSubscription") >= 1
    assert [s for s in emulator.subscriptions() if new_list in s["resource"]] == []
