"""The sweep's decisions, in memory: every scope not read for a while is read, busy ones are left
to their reader, one failure stops no other."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from functions.core.read_leases import READ_LEASE
from functions.core.sources.graph.models import CreateGraphSubscriptionRequest
from functions.core.sources.sharepoint import SHAREPOINT
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from functions.core.sweep import ChangeSweep
from tests.fakes.world import World, world


@pytest.fixture
def env() -> World:
    return world(SWEEP_MAX_AGE_HOURS="0", GRAPH_SWEEP_MAX_AGE_HOURS="0")


def sweep(env: World) -> ChangeSweep:
    return env.services.sweep


def test_the_sweep_reads_every_due_scope_of_every_source_and_refreshes_quiet_ones(env):
    lists = [env.sharepoint.create_list() for _ in range(2)]
    records = [
        env.services.subscriptions.create(CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id))
        for list_id in lists
    ]
    graph = env.services.subscriptions.create(
        CreateGraphSubscriptionRequest(source="graph", resource="/drives/b!d/root", change_type="updated")
    )
    env.sharepoint.change(lists[0])
    env.graph.put("a.txt")
    report = sweep(env).run()
    assert sorted(report.synced) == sorted([*lists, graph.scope])
    assert report.changes_written == 2 and not report.failed
    # A refreshing read: the quiet list's checkpoint moves to the list's current token.
    quiet = env.services.subscriptions.checkpoints.read(lists[1], SHAREPOINT)
    assert quiet is not None and quiet.subscription_id == records[1].id
    assert env.sharepoint.count("CurrentChangeToken") >= 4  # two at create, one per swept list


def test_one_failing_scope_stops_no_other(env):
    lists = [env.sharepoint.create_list() for _ in range(2)]
    for list_id in lists:
        env.services.subscriptions.create(CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id))
    for _ in range(3):
        env.sharepoint.fail_next(lists[0], 500, {"odata.error": {"code": "x", "message": {"value": "down"}}})
    report = sweep(env).run()
    assert [scope for scope, _ in report.failed] == [lists[0]]
    assert report.synced == [lists[1]]


def test_a_scope_being_read_by_a_worker_is_left_to_it(env):
    list_id = env.sharepoint.create_list()
    env.services.subscriptions.create(CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id))
    leases = env.services.worker.reads.leases
    lease = leases.read(list_id, SHAREPOINT)
    now = datetime.now(UTC)
    leases.write(lease, holder="a-worker", expires_at=now + READ_LEASE, read_started=now, dirty=False)
    report = sweep(env).run()
    assert report.busy == [list_id] and report.synced == []


def test_nothing_is_due_when_every_scope_was_read_lately():
    env = world()  # SharePoint 24 hours, Graph 6
    list_id = env.sharepoint.create_list()
    env.services.subscriptions.create(CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id))
    assert sweep(env).run().synced == []


def test_graph_scopes_are_swept_on_their_own_shorter_age():
    """Graph may announce a drive change 6 hours late; SharePoint keeps SWEEP_MAX_AGE_HOURS."""
    env = world(SWEEP_MAX_AGE_HOURS="24", GRAPH_SWEEP_MAX_AGE_HOURS="6")
    list_id = env.sharepoint.create_list()
    env.services.subscriptions.create(CreateSubscriptionRequest(site_url="/sites/team", list_id=list_id))
    graph = env.services.subscriptions.create(
        CreateGraphSubscriptionRequest(source="graph", resource="/drives/b!d/root", change_type="updated")
    )
    seven_hours_on = dataclasses.replace(sweep(env), clock=lambda: datetime.now(UTC) + timedelta(hours=7))
    assert seven_hours_on.run().synced == [graph.scope]
    a_day_on = dataclasses.replace(sweep(env), clock=lambda: datetime.now(UTC) + timedelta(hours=25))
    assert sorted(a_day_on.run().synced) == sorted([list_id, graph.scope])
