"""Subscriptions in memory: create, list, renew, recreate, delete, for every source."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from functions.core.errors import BadRequest
from functions.core.models import dump
from functions.core.sources.base import InvalidSubscriptionRequest
from functions.core.sources.graph.models import CreateGraphSubscriptionRequest
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.sources.sharepoint.subscriber import MAX_LIFETIME
from functions.core.subscriptions import SubscriptionConflict, SubscriptionNotFound
from tests.fakes.world import SITE, World, world


@pytest.fixture
def env() -> World:
    return world()


def sharepoint_request(list_id: str, **fields) -> CreateSubscriptionRequest:
    return CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id, **fields)


def test_a_list_subscription_starts_its_cursor_before_subscribing(env):
    list_id = env.sharepoint.create_list()
    record = env.services.subscriptions.create(sharepoint_request(list_id))
    assert (record.source, record.scope, record.address) == ("sharepoint", list_id, SITE)
    assert env.sharepoint.lists[list_id].subscriptions[record.id]["notificationUrl"].endswith("/sharepoint")
    view = dump(env.services.subscription_views.view(record, timedelta(days=45)))
    assert (view["siteUrl"], view["listId"]) == (SITE, list_id)
    assert view["nextRenewalDateTime"] < view["expirationDateTime"]


def test_a_second_subscription_for_one_list_is_a_conflict(env):
    list_id = env.sharepoint.create_list()
    first = env.services.subscriptions.create(sharepoint_request(list_id))
    with pytest.raises(SubscriptionConflict) as conflict:
        env.services.subscriptions.create(sharepoint_request(list_id))
    assert conflict.value.existing_id == first.id


@pytest.mark.parametrize(
    "site_url",
    [
        "https://evil.example/sites/x",
        "http://contoso.sharepoint.com/sites/x",  # the bearer token would travel in the clear
        "/sites/x?y=1",
        "/sites/../admin",
        "/sites//x",
        "/sites/x y",
    ],
)
def test_a_site_outside_the_tenant_or_not_plain_is_refused(env, site_url):
    with pytest.raises(InvalidSubscriptionRequest):
        env.services.subscriptions.create(CreateSubscriptionRequest(site_url=site_url, list_id=uuid.uuid4()))


def test_an_expiry_is_checked_against_sharepoints_limit(env):
    now = datetime.now(UTC)
    for expiry in (now - timedelta(minutes=1), now + MAX_LIFETIME + timedelta(days=1)):
        with pytest.raises(InvalidSubscriptionRequest):
            env.services.subscriptions.create(
                sharepoint_request(env.sharepoint.create_list(), expiration_date_time=expiry)
            )
    soon = now + timedelta(days=3)
    record = env.services.subscriptions.create(
        sharepoint_request(env.sharepoint.create_list(), expiration_date_time=soon)
    )
    assert abs((record.expiration - soon).total_seconds()) < 2


def test_a_graph_resource_is_checked_and_subscribed_with_its_lifecycle_url(env):
    request = CreateGraphSubscriptionRequest(
        source="graph", resource="/drives/b!x/root", change_type="updated"
    )
    record = env.services.subscriptions.create(request)
    remote = env.graph.subscriptions[record.id]
    assert remote["lifecycleNotificationUrl"].endswith("/graph/lifecycle")
    assert record.scope.startswith("graph-") and record.address == "/drives/b!x/root"
    with pytest.raises(InvalidSubscriptionRequest):
        env.services.subscriptions.create(
            CreateGraphSubscriptionRequest(source="graph", resource="/sites/x", change_type="updated")
        )


def test_a_create_request_is_read_in_the_model_of_the_source_it_names(env):
    parse = env.services.subscriptions.parse_request
    assert isinstance(
        parse(b'{"siteUrl": "/sites/a", "listId": "' + str(uuid.uuid4()).encode() + b'"}'),
        CreateSubscriptionRequest,
    )
    graph = b'{"source": "graph", "resource": "/drives/b!x/root", "changeType": "updated"}'
    assert isinstance(parse(graph), CreateGraphSubscriptionRequest)
    with pytest.raises(BadRequest, match="source must be one of sharepoint, graph, teams"):
        parse(b'{"source": "yammer"}')
    with pytest.raises(ValidationError):
        parse(b"not json")


def test_renewal_extends_and_a_gone_subscription_is_recreated(env):
    list_id = env.sharepoint.create_list()
    record = env.services.subscriptions.create(
        sharepoint_request(list_id, expiration_date_time=datetime.now(UTC) + timedelta(days=2))
    )
    renewed = env.services.renewals.renew(record.id)
    assert renewed.expiration > record.expiration and renewed.last_renewed is not None

    env.sharepoint.lists[list_id].subscriptions.clear()
    recreated = env.services.renewals.renew(record.id)
    assert recreated.id != record.id and recreated.previous_id == record.id
    assert env.services.subscriptions.get(recreated.id).scope == list_id
    with pytest.raises(SubscriptionNotFound):
        env.services.subscriptions.get(record.id)


def test_a_subscription_deleted_while_it_is_renewed_is_neither_recreated_nor_written_back(env):
    list_id = env.sharepoint.create_list()
    service = env.services.subscriptions
    soon = datetime.now(UTC) + timedelta(days=2)
    record = service.create(sharepoint_request(list_id, expiration_date_time=soon))
    # The renewal read the record; a delete through the API then removes it at the source and here.
    service.delete(record.id)
    with pytest.raises(SubscriptionNotFound):
        # The source answers 404: that was the delete, not a lapse.
        env.services.renewals._renew_record(record)
    assert env.sharepoint.lists[list_id].subscriptions == {}
    page, _ = service.page(top=10)
    assert page == []

    # Deleted here after the source renewed it: the renewal does not write the record back.
    again = service.create(sharepoint_request(list_id, expiration_date_time=soon))
    service.store.delete(again)
    with pytest.raises(SubscriptionNotFound):
        env.services.renewals._renew_record(again)
    assert service.store.get(again.id) is None


def test_a_delete_under_way_is_never_undone_by_a_renewal_or_a_lifecycle_event(env):
    """The window between the source's delete and the record's: the record says deleting."""
    list_id = env.sharepoint.create_list()
    service = env.services.subscriptions
    record = service.create(sharepoint_request(list_id))
    env.sharepoint.lists[list_id].subscriptions.clear()  # the DELETE reached the source...
    marked = service.store.mark_deleting(record)  # ...after marking the record, not yet removing it
    assert marked.status == "deleting"
    with pytest.raises(SubscriptionNotFound):
        env.services.renewals.renew(record.id)  # the 404 is the delete's: no subscribing again
    assert env.sharepoint.lists[list_id].subscriptions == {}
    report = env.services.worker.process_message(
        env.notification(record.id, lifecycle_event="subscriptionRemoved")
    )
    assert report.unknown_subscriptions == [record.id] and report.lists_synced == 0
    assert env.sharepoint.lists[list_id].subscriptions == {}


def test_renew_due_renews_only_what_is_due_soonest_first(env):
    now = datetime.now(UTC)
    due = env.services.subscriptions.create(
        sharepoint_request(env.sharepoint.create_list(), expiration_date_time=now + timedelta(days=2))
    )
    later = env.services.subscriptions.create(sharepoint_request(env.sharepoint.create_list()))
    report = env.services.renewals.renew_due(timedelta(days=45))
    assert report.renewed == [due.id] and later.id not in report.renewed
    also_due = env.services.subscriptions.create(
        sharepoint_request(env.sharepoint.create_list(), expiration_date_time=now + timedelta(days=2))
    )
    # A run that reaches its deadline starts nothing more and leaves the rest to the next run.
    stopped = env.services.renewals.renew_due(timedelta(days=45), deadline=now)
    assert stopped.left_for_next_run == [also_due.id] and stopped.renewed == []


def test_delete_removes_the_subscription_at_the_source_and_here(env):
    list_id = env.sharepoint.create_list()
    record = env.services.subscriptions.create(sharepoint_request(list_id))
    env.services.subscriptions.delete(record.id)
    assert env.sharepoint.lists[list_id].subscriptions == {}
    with pytest.raises(SubscriptionNotFound):
        env.services.subscriptions.get(record.id)
    env.services.subscriptions.create(sharepoint_request(list_id))  # the list's claim went with it


def test_listing_pages_through_every_source_in_order(env):
    created = [
        env.services.subscriptions.create(sharepoint_request(env.sharepoint.create_list())) for _ in range(3)
    ]
    created.append(
        env.services.subscriptions.create(
            CreateGraphSubscriptionRequest(source="graph", resource="/drives/b!y/root", change_type="updated")
        )
    )
    seen, after = [], ""
    while True:
        page, after = env.services.subscriptions.page(after=after, top=2)
        seen += [record.id for record in page]
        if after is None:
            break
    assert sorted(seen) == sorted(record.id for record in created)
    assert seen[-1] == created[-1].id  # sharepoint's partition, then graph's
    with pytest.raises(InvalidSubscriptionRequest):
        env.services.subscriptions.page(after="yammer:x", top=2)


def test_health_says_when_the_token_was_issued_and_how_reads_went(env):
    list_id = env.sharepoint.create_list()
    record = env.services.subscriptions.create(sharepoint_request(list_id))
    env.sharepoint.change(list_id)
    env.services.worker.process_message(env.notification(record.id))
    health = env.services.subscription_views.health(record, sinks=[])
    assert health.change_token_date_time and health.last_notification_date_time
    assert health.consecutive_failures == 0
