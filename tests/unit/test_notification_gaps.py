"""Notification gaps, in memory: changes the sweep finds that no notification announced, and the
state they put a subscription in: healthy, late, silent."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.subscriptions import SubscriptionRecord
from tests.fakes.world import World, world


@pytest.fixture
def env() -> World:
    return world(SWEEP_MAX_AGE_HOURS="0", SILENT_AFTER_HOURS="24")


def subscribe(env: World) -> tuple[SubscriptionRecord, str]:
    list_id = env.sharepoint.create_list()
    record = env.services.subscriptions.create(
        CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id)
    )
    return record, list_id


def at(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def sweep_at(env: World, hours: float) -> None:
    dataclasses.replace(env.services.sweep, clock=lambda: at(hours)).run()


def health_at(env: World, record: SubscriptionRecord, hours: float) -> dict:
    service = dataclasses.replace(env.services.subscriptions, clock=lambda: at(hours))
    return service.health(record, []).model_dump(mode="json", by_alias=True, exclude_none=True)


def test_changes_found_unannounced_are_a_gap_and_the_state_follows_them(env):
    record, list_id = subscribe(env)
    assert health_at(env, record, 0)["state"] == "healthy"

    env.sharepoint.change(list_id)  # now; no notification comes for it
    sweep_at(env, 1)
    health = health_at(env, record, 1)
    assert health["notificationGaps"]["count"] == 1
    assert 3500 < health["notificationGaps"]["longestSeconds"] < 3700
    assert health["state"] == "late"  # not yet a day without any notification

    assert health_at(env, record, 26)["state"] == "silent"  # a day on, still no notification

    env.clock.skipped = timedelta(hours=2)  # a notification arrives two hours in
    env.sharepoint.change(list_id)
    env.services.worker.process_message(env.notification(record.id))
    assert health_at(env, record, 3)["state"] == "late"  # notifications come; the gap was recent
    assert health_at(env, record, 30)["state"] == "healthy"  # a day since the last gap


def test_a_change_the_sweep_finds_within_the_sources_delay_is_no_gap(env):
    record, list_id = subscribe(env)
    env.sharepoint.change(list_id)
    sweep_at(env, 0.1)  # six minutes: SharePoint may still be about to announce it
    health = health_at(env, record, 0.1)
    assert health["notificationGaps"]["count"] == 0 and health["state"] == "healthy"


def test_an_announced_change_is_no_gap(env):
    record, list_id = subscribe(env)
    env.sharepoint.change(list_id)
    env.clock.skipped = timedelta(minutes=1)
    env.services.subscriptions.checkpoints.record_notification(record.scope, env.clock.now(), "sharepoint")
    env.sharepoint.change(list_id)  # announced by the notification above, read by the sweep
    sweep_at(env, 2)
    assert health_at(env, record, 2)["notificationGaps"]["count"] == 0
