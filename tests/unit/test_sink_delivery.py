"""Connector delivery's decisions, in memory: rows go out in log order, once; the cursor moves only
on a 2xx; failures back off, a 410 disables, a replay resends; cards and signed webhooks."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from functions.core.models import UpdateSubscriptionRequest
from functions.core.resources import DELIVERIES_QUEUE
from functions.core.sinks.delivery import DrainReport, Signal
from functions.core.sinks.record import SinkState
from functions.core.sinks.sender import Outcome
from functions.core.sinks.service import CreateSinkRequest, ReplayRequest, RotateSecretRequest
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.subscriptions import SubscriptionRecord
from tests.fakes.world import World, world

HOOK = "https://20.30.40.50/hook"
TEAMS = "https://prod-01.westeurope.logic.azure.com/workflows/1/triggers/manual/paths/invoke?sig=x"


@pytest.fixture
def env() -> World:
    return world(SINK_RETRY_BASE_SECONDS="1")


def subscribed(env: World) -> tuple[SubscriptionRecord, str]:
    list_id = env.sharepoint.create_list()
    record = env.services.subscriptions.create(
        CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id)
    )
    return record, list_id


def changes(env: World, record: SubscriptionRecord, list_id: str, count: int) -> list[int]:
    items = [env.sharepoint.change(list_id) for _ in range(count)]
    env.services.worker.process_message(env.notification(record.id))
    return items


def deliver(env: World) -> list[DrainReport]:
    """Drain every delivery signal, as the queue trigger would, until none is left."""
    outcomes = []
    while signals := env.storage.queue(DELIVERIES_QUEUE).take_visible():
        outcomes += [
            env.services.delivery.drain(body, holder=f"message-{n}") for n, body in enumerate(signals)
        ]
    return outcomes


def sent_items(env: World, sink_id: str) -> list[int]:
    return [change["itemId"] for body in env.receivers.bodies(sink_id) for change in body["changes"]]


def test_every_row_goes_to_a_webhook_once_in_log_order_signed(env):
    record, list_id = subscribed(env)
    sink, secret = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    assert secret and secret.startswith("whsec_")
    items = changes(env, record, list_id, 5)
    deliver(env)
    assert sent_items(env, sink.id) == items
    _, headers, _ = env.receivers.posts[0]
    assert headers["webhook-id"] and headers["webhook-signature"].startswith("v1,")
    cursor = env.services.delivery.cursors.get(sink.scope, sink.id)
    assert cursor is not None and cursor.attempts == 0

    more = changes(env, record, list_id, 2)
    deliver(env)
    assert sent_items(env, sink.id) == items + more


def test_a_failing_receiver_keeps_the_rows_and_backs_off(env):
    record, list_id = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    env.receivers.answer = lambda sink: Outcome(False, 503, "HTTP 503", retry_after=7)
    items = changes(env, record, list_id, 2)
    deliver(env)
    cursor = env.services.delivery.cursors.get(sink.scope, sink.id)
    assert cursor is not None and cursor.attempts == 1 and cursor.failing_since is not None
    assert cursor.next_attempt_at is not None and cursor.next_attempt_at > datetime.now(UTC)
    [state] = env.services.sinks.states(record.id)
    assert state.failing_since is not None

    env.receivers.answer = lambda sink: Outcome(True, 200, "HTTP 200")
    env.services.sinks.retry_now(record.id, sink.id)
    deliver(env)
    # The same rows, under the same message id: the receiver can tell a retry from news.
    first, second = env.receivers.posts[0], env.receivers.posts[-1]
    assert first[1]["webhook-id"] == second[1]["webhook-id"]
    assert sent_items(env, sink.id)[-2:] == items


def test_a_410_disables_the_sink_and_enable_resumes_where_it_stopped(env):
    record, list_id = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    env.receivers.answer = lambda sink: Outcome(False, 410, "HTTP 410", gone=True)
    items = changes(env, record, list_id, 1)
    deliver(env)
    disabled = env.services.sinks.get(record.id, sink.id)
    assert disabled.state is SinkState.DISABLED and disabled.disabled_reason

    env.receivers.answer = lambda sink: Outcome(True, 200, "HTTP 200")
    more = changes(env, record, list_id, 1)
    env.services.sinks.enable(record.id, sink.id)
    deliver(env)
    assert sent_items(env, sink.id)[-2:] == items + more


def test_a_sink_disabled_by_hand_is_sent_nothing(env):
    record, list_id = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    env.services.sinks.disable(record.id, sink.id)
    changes(env, record, list_id, 2)
    deliver(env)
    assert env.receivers.bodies(sink.id) == []


def test_a_replay_sends_a_range_again_under_new_ids(env):
    record, list_id = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    items = changes(env, record, list_id, 3)
    deliver(env)
    ids = {headers["webhook-id"] for _, headers, _ in env.receivers.posts}
    count = env.services.sinks.replay(
        record.id, sink.id, ReplayRequest(since=datetime.now(UTC) - timedelta(days=1))
    )
    assert count == 3
    deliver(env)
    assert sent_items(env, sink.id) == items + items
    assert not ids & {headers["webhook-id"] for _, headers, _ in env.receivers.posts[len(ids) :]}


def test_a_teams_workflow_gets_adaptive_cards(env):
    record, list_id = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="teams-workflow", url=TEAMS))
    changes(env, record, list_id, 2)
    deliver(env)
    [body] = env.receivers.bodies(sink.id)
    assert body["type"] == "message"
    assert body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"


def test_a_rotated_secret_signs_beside_the_old_one(env):
    record, list_id = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    rotated, secret = env.services.sinks.rotate_secret(record.id, sink.id, RotateSecretRequest())
    assert secret.startswith("whsec_") and rotated.previous_secret
    changes(env, record, list_id, 1)
    deliver(env)
    _, headers, _ = env.receivers.posts[-1]
    assert len(headers["webhook-signature"].split()) == 2


def test_the_test_send_reports_the_receivers_status_only(env):
    record, _ = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    env.receivers.answer = lambda sink: Outcome(False, 500, "HTTP 500")
    outcome = env.services.sinks.send_sample(record.id, sink.id)
    assert (outcome.ok, outcome.status) == (False, 500)
    [body] = env.receivers.bodies(sink.id)
    assert body["changes"][0]["id"] == "test"


def test_catch_up_signals_a_sink_still_owed_rows(env):
    record, list_id = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    items = changes(env, record, list_id, 2)
    env.queued(DELIVERIES_QUEUE)  # the signal is lost
    assert env.services.delivery.catch_up() == 1
    deliver(env)
    assert sent_items(env, sink.id) == items


def test_deleting_the_subscription_deletes_its_sinks_and_cursors(env):
    record, _ = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    env.services.sinks.delete_subscription(record.id)
    assert env.services.delivery.cursors.get(sink.scope, sink.id) is None
    assert env.sharepoint.lists[record.scope].subscriptions == {}


def test_views_mask_the_url_and_never_show_the_secret(env):
    record, _ = subscribed(env)
    sink, _ = env.services.sinks.create(
        record.id, CreateSinkRequest(type="webhook", url=HOOK + "?token=qsecret")
    )
    view = json.dumps(env.services.sinks.views(record.id))
    assert "qsecret" not in view and "whsec_" not in view
    assert dataclasses.asdict(env.services.sinks.get(record.id, sink.id))["url"].endswith("qsecret")


APP = "6731de76-14a6-49ae-97bc-6eba6914391e"
APP_CLAIM = (f"i:0i.t|ms.sp.ext|{APP}@9188040d-6c67-4c5b-b112-36a304b66dad", None)
ANN = ("i:0#.f|membership|ann@contoso.com", "ann@contoso.com")


def test_a_sink_leaves_out_the_changes_of_whom_it_ignores_and_the_log_keeps_them(env):
    record, list_id = subscribed(env)
    request = CreateSinkRequest.model_validate(
        {"type": "webhook", "url": HOOK, "ignoreChangesBy": [APP, "BOB@contoso.com"]}
    )
    sink, _ = env.services.sinks.create(record.id, request)
    assert sink.view()["ignoreChangesBy"] == [APP, "BOB@contoso.com"]
    own = env.sharepoint.change(list_id, editor=APP_CLAIM)  # the receiver's own app writing back
    anns = env.sharepoint.change(list_id, editor=ANN)
    bobs = env.sharepoint.change(list_id, editor=("i:0#.f|membership|bob@contoso.com", "bob@contoso.com"))
    unknown = env.sharepoint.change(list_id)  # SharePoint named no editor: sent
    env.services.worker.process_message(env.notification(record.id))
    deliver(env)
    assert sent_items(env, sink.id) == [anns, unknown]
    sent = [c for body in env.receivers.bodies(sink.id) for c in body["changes"]]
    assert (sent[0]["changedBy"], sent[0]["changedByKind"]) == ("ann@contoso.com", "user")
    rows, _ = env.services.change_log.page(record.scope, after="", top=10)
    assert [row["itemId"] for row in rows] == [own, anns, bobs, unknown]
    assert rows[0]["changedByKind"] == "application"
    cursor = env.services.delivery.cursors.get(sink.scope, sink.id)
    assert cursor is not None and cursor.position == rows[-1]["RowKey"]  # past the ignored rows too


def test_a_subscriptions_ignore_list_holds_for_all_its_sinks_and_survives_a_recreate(env):
    list_id = env.sharepoint.create_list()
    request = CreateSubscriptionRequest.model_validate(
        {"siteUrl": "/sites/team", "listId": list_id, "ignoreChangesBy": [APP, APP]}
    )
    record = env.services.subscriptions.create(request)
    assert record.ignore_changes_by == (APP,)
    view = env.services.subscription_views.plain_view(record).model_dump(by_alias=True, exclude_none=True)
    assert view["ignoreChangesBy"] == [APP]
    webhook, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    card, _ = env.services.sinks.create(
        record.id,
        CreateSinkRequest.model_validate(
            {"type": "webhook", "url": HOOK + "2", "ignoreChangesBy": ["ann@contoso.com"]}
        ),
    )
    own = env.sharepoint.change(list_id, editor=APP_CLAIM)
    anns = env.sharepoint.change(list_id, editor=ANN)
    env.services.worker.process_message(env.notification(record.id))
    deliver(env)
    assert sent_items(env, webhook.id) == [anns]  # the subscription's list
    assert sent_items(env, card.id) == []  # the subscription's and its own
    rows, _ = env.services.change_log.page(record.scope, after="", top=10)
    assert [row["itemId"] for row in rows] == [own, anns]  # the log keeps both

    # Changed in place; a recreated subscription (a new id) keeps it.
    updated = env.services.subscriptions.update(
        record.id, UpdateSubscriptionRequest.model_validate({"ignoreChangesBy": []})
    )
    assert updated.ignore_changes_by == ()
    env.services.subscriptions.update(
        record.id, UpdateSubscriptionRequest.model_validate({"ignoreChangesBy": [APP]})
    )
    replacement = env.services.renewals.recreate(env.services.subscriptions.get(record.id), sync=False)
    assert replacement.id != record.id and replacement.ignore_changes_by == (APP,)
    env.sharepoint.change(list_id, editor=APP_CLAIM)
    env.services.worker.process_message(env.notification(replacement.id))
    deliver(env)
    assert sent_items(env, webhook.id) == [anns]


def test_a_drain_of_rows_that_name_no_one_reads_no_subscription(env):
    record, list_id = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    items = changes(env, record, list_id, 3)  # SharePoint named no editor
    reads: list[str] = []
    env.storage.table("subscriptions").before = reads.append
    deliver(env)
    assert sent_items(env, sink.id) == items
    assert reads == []  # the subscription's ignore list is read only for rows that name someone


def test_an_update_names_only_what_may_change(env):
    with pytest.raises(ValidationError):
        UpdateSubscriptionRequest.model_validate({"ignoreChangesBy": [APP], "listId": "x"})
    with pytest.raises(ValidationError):
        UpdateSubscriptionRequest.model_validate({"ignoreChangesBy": [""]})
    with pytest.raises(ValidationError):
        UpdateSubscriptionRequest.model_validate({"ignoreChangesBy": [f"u{n}@x" for n in range(21)]})


def test_a_sinks_view_says_how_far_it_is_behind_the_change_log(env):
    record, list_id = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    [view] = env.services.sinks.views(record.id)
    assert view["delivery"]["owedRows"] == 0
    env.receivers.answer = lambda sink: Outcome(False, 503, "HTTP 503")
    changes(env, record, list_id, 3)
    deliver(env)
    [view] = env.services.sinks.views(record.id)
    delivery = view["delivery"]
    assert delivery["owedRows"] == 3 and delivery["owedRowsAtLeast"] is False
    assert delivery["oldestOwedDateTime"].endswith("Z")
    env.receivers.answer = lambda sink: Outcome(True, 200, "HTTP 200")
    env.services.sinks.retry_now(record.id, sink.id)
    deliver(env)
    [view] = env.services.sinks.views(record.id)
    assert view["delivery"]["owedRows"] == 0


class CountingLog:
    """The change log, counting the reads after each position."""

    def __init__(self, change_log) -> None:
        self._log = change_log
        self.reads: list[str] = []

    def following(self, scope: str, *, after: str, limit: int):
        self.reads.append(after)
        return self._log.following(scope, after=after, limit=limit)

    def __getattr__(self, name: str):
        return getattr(self._log, name)


def long_log(env: World, rows: int) -> tuple[SubscriptionRecord, str]:
    record, _ = subscribed(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    now = datetime.now(UTC)
    env.services.change_log.append(
        record.scope,
        [
            {"RowKey": f"{n:020d}", "subscriptionId": record.id, "source": "sharepoint",
             "changeType": "update", "itemId": n, "time": now}
            for n in range(rows)
        ],
    )  # fmt: skip
    return record, sink.id


def test_a_long_log_goes_out_whole_in_order_each_page_read_once_and_acknowledged_once(env, monkeypatch):
    record, sink_id = long_log(env, 2_300)  # two full pages of 1,000 and a partial one
    counting = CountingLog(env.services.change_log)
    writes: list[str] = []
    cursors = env.services.delivery.cursors
    original_update = cursors.update

    def counted_update(cursor, change):
        writes.append(cursor.position)
        return original_update(cursor, change)

    delivery = dataclasses.replace(env.services.delivery, change_log=counting)
    monkeypatch.setattr(cursors, "update", counted_update)
    report = delivery.drain(Signal(record.scope, sink_id, "rows").to_message(), holder="one")
    assert report.batches_delivered == 12 and sent_items(env, sink_id) == list(range(2_300))
    # Each page read once, the next one while this one was sent.
    assert counting.reads == ["", f"{999:020d}", f"{1999:020d}", f"{2299:020d}"]
    # The lease, one acknowledgement per page, the last batch of 100 recorded before it is sent
    # and acknowledged, the release: 7 writes for 12 batches.
    assert len(writes) == 7
    assert cursors.get(record.scope, sink_id).position == f"{2299:020d}"


def test_batches_sent_and_not_yet_acknowledged_go_again_under_the_same_ids(env):
    record, sink_id = long_log(env, 1_000)
    sent = 0

    def crash_after_three(sink):
        nonlocal sent
        sent += 1
        if sent == 4:
            raise RuntimeError("the host dies while batch 4 is on the wire")
        return Outcome(True, 204, "HTTP 204")

    env.receivers.answer = crash_after_three
    with pytest.raises(RuntimeError):
        env.services.delivery.drain(Signal(record.scope, sink_id, "rows").to_message(), holder="dies")
    first_ids = [headers["webhook-id"] for _, headers, _ in env.receivers.posts]
    assert env.services.delivery.cursors.get(record.scope, sink_id).position == ""  # none acknowledged

    env.receivers.answer = lambda sink: Outcome(True, 204, "HTTP 204")
    later = env.services.delivery.clock() + timedelta(minutes=5)  # past the dead holder's lease
    delivery = dataclasses.replace(env.services.delivery, clock=lambda: later)
    delivery.drain(Signal(record.scope, sink_id, "rows").to_message(), holder="next")
    ids = [headers["webhook-id"] for _, headers, _ in env.receivers.posts]
    assert ids[len(first_ids) :][: len(first_ids)] == first_ids  # the same batches, the same ids
    assert len(set(ids)) == 5 and sorted(set(sent_items(env, sink_id))) == list(range(1_000))


def test_a_failed_batch_leaves_the_ones_before_it_acknowledged(env):
    record, sink_id = long_log(env, 1_000)
    answers = iter([Outcome(True, 204, "HTTP 204")] * 2 + [Outcome(False, 503, "HTTP 503")])
    env.receivers.answer = lambda sink: next(answers)
    report = env.services.delivery.drain(Signal(record.scope, sink_id, "rows").to_message(), holder="one")
    assert report.ended.name == "FAILED" and report.batches_delivered == 2
    assert env.services.delivery.cursors.get(record.scope, sink_id).position == f"{399:020d}"
