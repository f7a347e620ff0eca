"""Health alerts, in memory: one alert when a condition starts and one when it ends, at most one an
hour per subscription and condition, none lost when the alert sink is down."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from functions.core.alerts import MIN_INTERVAL, Condition
from functions.core.sinks.sender import Outcome
from functions.core.sinks.service import CreateSinkRequest
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.subscriptions import SubscriptionRecord
from functions.core.worker import ListSyncFailed
from tests.fakes.world import World, world

ALERTS = "https://20.30.40.60/alerts"
HOOK = "https://20.30.40.50/hook"
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def env() -> World:
    return world(
        ALERT_SINK_URL=ALERTS,
        ALERT_SINK_TYPE="webhook",
        ALERT_SINK_SECRET=SECRET,
        ALERT_AFTER_FAILED_READS="3",
        SWEEP_MAX_AGE_HOURS="0",
        SINK_RETRY_BASE_SECONDS="1",
    )


def subscribe(env: World, days: int = 2) -> tuple[SubscriptionRecord, str]:
    """A subscription that expires in `days`: due for renewal."""
    list_id = env.sharepoint.create_list()
    expires = datetime.now(UTC) + timedelta(days=days)
    request = CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id, expiration_date_time=expires)
    return env.services.subscriptions.create(request), list_id


BOOM = {"odata.error": {"code": "-1", "message": {"value": "boom"}}}


def fail_reads(env: World, path: str, times: int) -> None:
    for _ in range(times * 3):  # every attempt of each call
        env.sharepoint.fail_next(path, 500, BOOM)


def alerts(env: World) -> list[tuple[str, str, str]]:
    return [(a["subscriptionId"], a["condition"], a["state"]) for a in env.receivers.bodies("alerts")]


def test_reads_failing_n_times_in_a_row_alert_once_and_a_read_that_works_says_so(env):
    record, list_id = subscribe(env)
    env.sharepoint.change(list_id)
    fail_reads(env, "GetChanges", 5)
    for _ in range(5):
        with pytest.raises(ListSyncFailed):
            env.services.worker.process_message(env.notification(record.id))
    assert alerts(env) == [(record.id, "readsFailing", "raised")]  # the 3rd failure; not the 4th, 5th
    [raised] = env.receivers.bodies("alerts")
    assert "3 failed reads in a row" in raised["detail"]
    _, headers, _ = env.receivers.posts[0]
    assert headers["webhook-signature"].startswith("v1,")  # signed as every webhook

    env.services.worker.process_message(env.notification(record.id))
    assert alerts(env)[-1] == (record.id, "readsFailing", "recovered")


def test_a_disabled_sink_alerts_and_enabling_it_says_so(env):
    record, _ = subscribe(env)
    sink, _ = env.services.sinks.create(record.id, CreateSinkRequest(type="webhook", url=HOOK))
    env.services.sinks.disable(record.id, sink.id)
    assert alerts(env) == [(record.id, "sinkDisabled", "raised")]
    env.services.sinks.enable(record.id, sink.id)
    assert alerts(env)[-1] == (record.id, "sinkDisabled", "recovered")


def test_a_failed_renewal_alerts_and_the_next_renewal_says_so(env):
    record, _ = subscribe(env)
    fail_reads(env, f"subscriptions('{record.id}')", 1)
    report = env.services.renewals.renew_due(timedelta(days=45))
    assert report.failed
    assert alerts(env) == [(record.id, "renewalFailed", "raised")]
    env.services.renewals.renew_due(timedelta(days=45))
    assert alerts(env)[-1] == (record.id, "renewalFailed", "recovered")


def test_a_recreated_subscription_is_said_once(env):
    _, list_id = subscribe(env)
    env.sharepoint.lists[list_id].subscriptions.clear()  # SharePoint forgot it: the renewal sees 404
    report = env.services.renewals.renew_due(timedelta(days=45))
    [(_, new)] = report.recreated
    assert alerts(env) == [(new, "recreated", "raised")]


def test_a_silent_subscription_alerts_and_at_most_once_an_hour(env):
    record, list_id = subscribe(env)
    env.sharepoint.change(list_id)
    later = lambda: datetime.now(UTC) + timedelta(hours=25)  # noqa: E731
    sweep = dataclasses.replace(
        env.services.sweep, clock=later, gaps=dataclasses.replace(env.services.sweep.gaps, clock=later)
    )
    sweep.run()
    assert alerts(env) == [(record.id, "silent", "raised")]
    sweep.run()
    assert len(alerts(env)) == 1  # still silent: nothing new to say

    # The first notification after it ends the silence, without waiting for the next sweep.
    env.clock.skipped = timedelta(hours=26)
    views = dataclasses.replace(env.services.subscription_views, clock=env.clock.now)
    worker = dataclasses.replace(env.services.worker, clock=env.clock.now, state_of=views.state)
    worker.process_message(env.notification(record.id))
    assert alerts(env)[-1] == (record.id, "silent", "recovered")


def test_flapping_is_said_at_most_once_an_hour(env):
    record, _ = subscribe(env)
    raised = [(record.id, "sinkDisabled", "raised")]
    env.services.delivery.alerts.raise_(record.id, Condition.SINK_DISABLED, "x")
    env.services.delivery.alerts.recover(record.id, Condition.SINK_DISABLED)
    env.services.delivery.alerts.raise_(record.id, Condition.SINK_DISABLED, "again, within the hour")
    env.services.delivery.alerts.recover(record.id, Condition.SINK_DISABLED)  # its raise went unsaid
    assert alerts(env) == [*raised, (record.id, "sinkDisabled", "recovered")]
    later = dataclasses.replace(env.services.delivery.alerts, clock=lambda: datetime.now(UTC) + MIN_INTERVAL)
    later.raise_(record.id, Condition.SINK_DISABLED, "an hour on")
    assert alerts(env)[-1] == (record.id, "sinkDisabled", "raised")


def test_an_alert_the_sink_refused_is_sent_by_the_catch_up(env):
    record, _ = subscribe(env)
    env.receivers.answer = lambda sink: Outcome(False, 503, "HTTP 503")
    env.services.delivery.alerts.raise_(record.id, Condition.SINK_DISABLED, "x")
    env.receivers.answer = lambda sink: Outcome(True, 200, "HTTP 200")
    env.services.delivery.catch_up()
    bodies = env.receivers.bodies("alerts")
    assert len(bodies) == 2 and bodies[0]["id"] == bodies[1]["id"]  # the same alert, once delivered
    env.services.delivery.catch_up()
    assert len(env.receivers.bodies("alerts")) == 2


def test_no_alert_sink_no_alert(env):
    quiet = world()
    record, _ = subscribe(quiet)
    assert not quiet.services.delivery.alerts.sink.sends
    quiet.services.delivery.alerts.raise_(record.id, Condition.SILENT, "x")
    assert quiet.receivers.posts == []


def test_a_teams_workflow_that_throttles_an_alert_gets_it_again_after_its_retry_after():
    env = world(ALERT_SINK_URL="https://20.30.40.60/workflow", ALERT_SINK_TYPE="teams-workflow")
    answers = iter([Outcome(False, 429, "HTTP 429", retry_after=0.01)])
    env.receivers.answer = lambda sink: next(answers, Outcome(True, 202, "HTTP 202"))
    record, _ = subscribe(env)
    env.services.alerts.raise_(record.id, Condition.RENEWAL_FAILED, "the source refused")
    posts = [body for sink, _, body in env.receivers.posts if sink.id == "alerts"]
    assert len(posts) == 2 and posts[0] == posts[1]  # the same card, sent again
    assert [view.undelivered for view in env.services.alerts.of(record.id)] == [False]


def test_an_alert_a_teams_workflow_keeps_throttling_stays_pending_for_the_catch_up_timer():
    env = world(ALERT_SINK_URL="https://20.30.40.60/workflow", ALERT_SINK_TYPE="teams-workflow")
    env.receivers.answer = lambda sink: Outcome(False, 429, "HTTP 429", retry_after=0.01)
    record, _ = subscribe(env)
    env.services.alerts.raise_(record.id, Condition.RENEWAL_FAILED, "the source refused")
    assert len([sink for sink, _, _ in env.receivers.posts if sink.id == "alerts"]) == 3
    assert [view.undelivered for view in env.services.alerts.of(record.id)] == [True]
    env.receivers.answer = lambda sink: Outcome(True, 202, "HTTP 202")
    assert env.services.delivery.catch_up() == 0
    assert [view.undelivered for view in env.services.alerts.of(record.id)] == [False]
