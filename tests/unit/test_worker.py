"""The worker's decisions, in memory: what it reads, writes, poisons, retries and puts back."""

from __future__ import annotations

import json
import uuid

import pytest

from functions.core.failures import FailureLog
from functions.core.resources import DELIVERIES_QUEUE, NOTIFICATIONS_POISON_QUEUE
from functions.core.sources.graph.models import CreateGraphSubscriptionRequest
from functions.core.sources.sharepoint import SHAREPOINT
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.subscriptions import SubscriptionRecord
from functions.core.worker import ListSyncFailed
from tests.fakes.m365 import OTHER_OBJECTS_TOKEN, sharepoint_error
from tests.fakes.world import World, world


@pytest.fixture
def env() -> World:
    return world()


def subscribe(env: World) -> tuple[SubscriptionRecord, str]:
    list_id = env.sharepoint.create_list()
    record = env.services.subscriptions.create(
        CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id)
    )
    return record, list_id


def logged(env: World, record: SubscriptionRecord) -> list[tuple[str, object]]:
    rows, _ = env.services.change_log.page(record.scope, after="", top=1000)
    return [(row["changeType"], row.get("itemId")) for row in rows]


def test_a_notification_reads_every_change_since_the_checkpoint_once(env):
    record, list_id = subscribe(env)
    items = [env.sharepoint.change(list_id) for _ in range(3)]
    report = env.services.worker.process_message(env.notification(record.id))
    assert (report.lists_synced, report.changes_written) == (1, 3)
    assert logged(env, record) == [("add", item) for item in items]

    # The same notification again: the read it caused covers it, and nothing is written twice.
    again = env.services.worker.process_message(env.notification(record.id))
    assert again.changes_written == 0
    assert logged(env, record) == [("add", item) for item in items]


def test_the_checkpoint_moves_only_as_far_as_the_changes_read(env):
    record, list_id = subscribe(env)
    env.sharepoint.change(list_id)
    env.services.worker.process_message(env.notification(record.id))
    checkpoint = env.services.subscriptions.checkpoints.read(list_id, SHAREPOINT)
    assert checkpoint is not None and checkpoint.cursor.endswith(";1")


def test_a_notification_for_an_unknown_subscription_reads_nothing(env):
    report = env.services.worker.process_message(env.notification(str(uuid.uuid4())))
    assert len(report.unknown_subscriptions) == 1
    assert report.lists_synced == 0


@pytest.mark.parametrize(
    "body",
    ["not json", json.dumps({"source": "sharepoint", "notifications": []}), json.dumps({"x": 1})],
)
def test_a_message_that_is_not_ours_is_poisoned_at_once(env, body):
    report = env.services.worker.process_message(body)
    assert report.poisoned_because
    assert env.queued(NOTIFICATIONS_POISON_QUEUE) == [body]


def test_a_message_naming_a_source_this_service_does_not_follow_is_poisoned(env):
    body = env.notification(str(uuid.uuid4()), source="yammer")
    report = env.services.worker.process_message(body)
    assert "unknown source" in (report.poisoned_because or "")


def test_a_cursor_the_source_calls_not_this_lists_poisons_the_message_with_the_reason(env):
    record, _ = subscribe(env)
    env.sharepoint.fail_next("GetChanges", 400, sharepoint_error(400, OTHER_OBJECTS_TOKEN, "other").json())
    body = env.notification(record.id)
    report = env.services.worker.process_message(body)
    assert "not this list's" in (report.poisoned_because or "")
    assert env.queued(NOTIFICATIONS_POISON_QUEUE) == [body]
    failure = FailureLog(env.storage).get(json.loads(body)["id"])
    assert failure is not None and failure.attempts == 1


def test_a_read_that_fails_fails_the_message_and_keeps_the_checkpoint(env):
    record, list_id = subscribe(env)
    before = env.services.subscriptions.checkpoints.read(list_id, SHAREPOINT)
    env.sharepoint.change(list_id)
    for _ in range(3):  # every attempt of the call
        env.sharepoint.fail_next(
            "GetChanges", 500, {"odata.error": {"code": "x", "message": {"value": "boom"}}}
        )
    with pytest.raises(ListSyncFailed):
        env.services.worker.process_message(env.notification(record.id))
    after = env.services.subscriptions.checkpoints.read(list_id, SHAREPOINT)
    assert before is not None and after is not None
    assert after.cursor == before.cursor
    assert after.consecutive_failures == 1 and "HTTP 500" in (after.last_failure or "")

    # The retry reads the change, and the streak ends.
    env.services.worker.process_message(env.notification(record.id))
    recovered = env.services.subscriptions.checkpoints.read(list_id, SHAREPOINT)
    assert recovered is not None and recovered.consecutive_failures == 0
    assert logged(env, record) == [("add", 1)]


def test_a_read_throttled_past_what_a_call_waits_puts_the_message_back_for_the_retry_after(env):
    record, list_id = subscribe(env)
    env.sharepoint.change(list_id)
    env.sharepoint.fail_next("GetChanges", 429, None, **{"Retry-After": "120"})
    report = env.services.worker.process_message(env.notification(record.id))
    assert report.deferred == [record.id]
    assert 120 <= report.deferred_seconds <= 121  # never sooner than the Retry-After
    [later] = env.queued()
    assert json.loads(later)["notifications"][0]["subscriptionId"] == record.id


def test_a_token_older_than_the_change_log_is_resynced_and_marked(env):
    record, list_id = subscribe(env)
    env.sharepoint.change(list_id)
    env.sharepoint.forget_changes_before_now(list_id)
    env.sharepoint.change(list_id)
    report = env.services.worker.process_message(env.notification(record.id))
    assert report.resyncs == 1
    kinds = [kind for kind, _ in logged(env, record)]
    assert kinds[0] == "resync" and kinds.count("update") == 2


def test_rows_written_signal_the_scopes_sinks(env):
    record, list_id = subscribe(env)
    from functions.core.sinks.service import CreateSinkRequest

    env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url="https://20.30.40.50/hook"))
    env.sharepoint.change(list_id)
    report = env.services.worker.process_message(env.notification(record.id))
    assert report.sinks_signalled == 1
    assert len(env.queued(DELIVERIES_QUEUE)) == 1


def graph_subscription(env: World) -> SubscriptionRecord:
    request = CreateGraphSubscriptionRequest(
        source="graph", resource="/drives/b!d1/root", change_type="updated"
    )
    return env.services.subscriptions.create(request)


def test_a_graph_notification_runs_a_delta_round_from_the_stored_link(env):
    record = graph_subscription(env)
    first = env.graph.put("plan.txt")
    env.graph.put("plan-v2.txt", first)
    second = env.graph.put("notes.txt")
    report = env.services.worker.process_message(env.notification(record.id, "graph", change_type="updated"))
    assert report.changes_written == 2
    rows, _ = env.services.change_log.page(record.scope, after="", top=10)
    assert sorted(row["itemId"] for row in rows) == sorted([first, second])
    env.graph.delete(second)
    env.services.worker.process_message(env.notification(record.id, "graph", change_type="deleted"))
    rows, _ = env.services.change_log.page(record.scope, after="", top=10)
    assert [row["changeType"] for row in rows if row["itemId"] == second][-1] == "delete"


def test_a_gone_delta_link_starts_the_round_over_with_a_resync(env):
    record = graph_subscription(env)
    env.graph.put("a.txt")
    env.graph.expire_links()
    report = env.services.worker.process_message(env.notification(record.id, "graph", change_type="updated"))
    assert report.resyncs == 1
    rows, _ = env.services.change_log.page(record.scope, after="", top=10)
    assert [row["changeType"] for row in rows] == ["resync", "update"]


def test_an_outlook_sync_state_refused_without_410_is_a_resync_too(env):
    """An expired Outlook delta token may answer 400 syncStateNotFound, without a Location."""
    record = graph_subscription(env)
    env.graph.put("a.txt")
    env.graph.expire_links(status=400, code="syncStateNotFound")
    report = env.services.worker.process_message(env.notification(record.id, "graph", change_type="updated"))
    assert report.resyncs == 1
    rows, _ = env.services.change_log.page(record.scope, after="", top=10)
    assert [row["changeType"] for row in rows] == ["resync", "update"]


def test_reauthorization_required_is_answered_by_one_renewing_patch(env):
    record = graph_subscription(env)
    report = env.services.worker.process_message(
        env.notification(record.id, "graph", lifecycle_event="reauthorizationRequired")
    )
    assert report.lifecycle_events == ["reauthorizationRequired"]
    calls = [(method, url) for method, url in env.graph.requests if f"/subscriptions/{record.id}" in url]
    assert [method for method, _ in calls] == ["PATCH"]  # never POST …/reauthorize beside a PATCH
    assert env.services.subscriptions.get(record.id).last_renewed is not None


def test_a_challenge_just_after_a_renewal_is_answered_by_it(env):
    """Graph forbids a reauthorize and a PATCH on one subscription within 10 minutes."""
    record = graph_subscription(env)
    env.services.renewals.renew(record.id)
    before = len(env.graph.requests)
    env.services.worker.process_message(
        env.notification(record.id, "graph", lifecycle_event="reauthorizationRequired")
    )
    assert [m for m, url in env.graph.requests[before:] if "/subscriptions/" in url] == []


def test_a_removed_subscription_is_recreated_and_keeps_its_cursor(env):
    record = graph_subscription(env)
    env.graph.put("before.txt")
    del env.graph.subscriptions[record.id]
    report = env.services.worker.process_message(
        env.notification(record.id, "graph", lifecycle_event="subscriptionRemoved")
    )
    [replacement] = env.graph.subscriptions
    assert replacement != record.id
    assert env.services.subscriptions.get(replacement).previous_id == record.id
    assert report.changes_written == 1  # what changed meanwhile was read with the kept cursor
