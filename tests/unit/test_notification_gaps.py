"""Notification gaps, in memory: changes the sweep finds that no notification announced, and the
state they put a subscription in: healthy, late, silent."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.subscriptions import SubscriptionRecord
from functions.core.worker import ListSyncFailed
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
    sweep = env.services.sweep
    clock = lambda: at(hours)  # noqa: E731
    dataclasses.replace(sweep, clock=clock, gaps=dataclasses.replace(sweep.gaps, clock=clock)).run()


def health_at(env: World, record: SubscriptionRecord, hours: float) -> dict:
    service = dataclasses.replace(env.services.subscription_views, clock=lambda: at(hours))
    stored = env.services.subscriptions.get(record.id)
    return service.health(stored, []).model_dump(mode="json", by_alias=True, exclude_none=True)


def list_states_at(env: World, hours: float) -> dict[str, dict]:
    """Each row of the subscription list's health summary, as the API shows it."""
    views = dataclasses.replace(env.services.subscription_views, clock=lambda: at(hours))
    records, _ = env.services.subscriptions.page(top=100)
    return {
        record.id: views.plain_view(record).model_dump(mode="json", by_alias=True)["healthSummary"]
        for record in records
    }


def operations_on(env: World, table: str) -> list[str]:
    seen: list[str] = []
    env.storage.table(table).before = seen.append
    return seen


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


def test_every_row_of_the_list_shows_the_state_from_the_record_alone(env):
    quiet, _ = subscribe(env)
    gapped, list_id = subscribe(env)
    env.sharepoint.change(list_id)
    sweep_at(env, 1)

    checkpoint_reads = operations_on(env, "checkpoints")
    rows = list_states_at(env, 1)
    assert rows[quiet.id]["state"] == "healthy" and rows[quiet.id]["lastGapDateTime"] is None
    assert rows[gapped.id]["state"] == "late" and rows[gapped.id]["lastGapDateTime"]
    assert list_states_at(env, 26)[gapped.id]["state"] == "silent"
    assert checkpoint_reads == []  # one query of the subscriptions table, nothing per row
    # The opened subscription and its row agree.
    assert health_at(env, gapped, 26)["state"] == "silent"


def test_notifications_write_the_record_only_when_the_state_moves(env):
    record, list_id = subscribe(env)
    env.sharepoint.change(list_id)
    sweep_at(env, 1)
    assert list_states_at(env, 26)[record.id]["state"] == "silent"

    writes = operations_on(env, "subscriptions")
    env.clock.skipped = timedelta(hours=2)
    for _ in range(5):
        env.sharepoint.change(list_id)
        env.services.worker.process_message(env.notification(record.id))
    assert writes.count("update_entity") == 1  # the first notification after the gap, no other
    assert list_states_at(env, 3)[record.id]["state"] == "late"
    assert list_states_at(env, 30)[record.id]["state"] == "healthy"


def test_failing_reads_show_on_the_row_until_a_read_completes(env):
    record, list_id = subscribe(env)
    env.sharepoint.change(list_id)
    for _ in range(2 * 3):  # every attempt of two reads
        env.sharepoint.fail_next(
            "GetChanges", 500, {"odata.error": {"code": "-1", "message": {"value": "x"}}}
        )
    for _ in range(2):
        with pytest.raises(ListSyncFailed):
            env.services.worker.process_message(env.notification(record.id))
    failing = list_states_at(env, 0)[record.id]
    assert failing["readsFailingSinceDateTime"] is not None and failing["state"] == "healthy"

    env.services.worker.process_message(env.notification(record.id))
    assert list_states_at(env, 0)[record.id]["readsFailingSinceDateTime"] is None


def test_a_renewal_keeps_the_summary_a_worker_wrote_after_the_renewer_read_the_record(env):
    record, list_id = subscribe(env)
    stale = env.services.subscriptions.get(record.id)
    env.sharepoint.change(list_id)
    sweep_at(env, 1)  # writes the gap onto the record after `stale` was read

    renewed = env.services.subscriptions.store.save_renewal(
        dataclasses.replace(stale, expiration=stale.expiration + timedelta(days=1))
    )
    stored = env.services.subscriptions.get(record.id)
    assert stored.expiration == renewed.expiration == stale.expiration + timedelta(days=1)
    assert stored.health.gap_at is not None  # not reverted by the renewer's older copy


def test_the_read_after_a_recreate_is_no_notification_and_finds_gaps_like_the_sweep(env):
    record, list_id = subscribe(env)
    env.sharepoint.lists[list_id].subscriptions.clear()  # the source forgot the subscription
    env.clock.skipped = timedelta(hours=1)
    env.sharepoint.change(list_id)  # an hour later, while no subscription existed: never announced
    env.clock.skipped = timedelta(hours=2)
    worker = dataclasses.replace(
        env.services.worker,
        clock=env.clock.now,
        gaps=dataclasses.replace(env.services.worker.gaps, clock=env.clock.now),
    )
    replacement = env.services.renewals.recreate(env.services.subscriptions.get(record.id))
    [requested] = env.queued()
    assert '"requested":true' in requested
    worker.process_message(requested)

    health = health_at(env, replacement, 2)
    assert health["notificationGaps"]["count"] == 1  # found unannounced, as the sweep would
    assert "lastNotificationDateTime" not in health  # the service's own read is no notification
    assert health["state"] == "late"
