"""Property-based fuzzing of both intakes over HTTP: whatever arrives, no 5xx while storage is up,
and nothing but notifications for our own subscriptions, with their secrets, reaches the queue."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.core.models import NotificationMessage
from functions.core.resources import NOTIFICATIONS_QUEUE
from tests.fault.conftest import FaultStack, fault_stack

EXAMPLES = 150
ANSWERS = {202, 400, 413}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=16,
)
timestamps = st.one_of(
    st.just("2026-12-01T00:00:00.0000000Z"), st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=30)
)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> Any:
    """Only the HTTP functions run, so whatever the intakes enqueue stays on the queue to check."""
    settings = {"AzureWebJobs.process_notifications.Disabled": "true"}
    with fault_stack(tmp_path_factory.mktemp("fuzz"), settings=settings) as running:
        yield running


@pytest.fixture(scope="module")
def ours(env: FaultStack) -> dict[str, dict[str, str]]:
    """A SharePoint and a Graph subscription: their ids, secrets and resources, by source."""
    _, sharepoint = env.subscribed_list()
    drive = env.emulator.drive_of(f"fuzz-{uuid.uuid4().hex[:6]}@contoso.com")
    created = env.api.create_graph_subscription(f"/drives/{drive}/root", "updated")
    assert created.status_code == 201, created.text
    [graph] = [s for s in env.emulator.graph_subscriptions() if s["id"] == created.json()["id"]]
    common = {
        "subscriptionId": graph["id"],
        "clientState": graph["clientState"],
        "tenantId": str(uuid.uuid4()),
        "subscriptionExpirationDateTime": "2026-12-01T00:00:00Z",
    }
    return {
        "sharepoint": sharepoint,
        "graph": {**common, "changeType": "updated", "resource": graph["resource"]},
        "graph/lifecycle": {**common, "lifecycleEvent": "missed", "resource": graph["resource"]},
    }


def entries(valid: dict[str, str], fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """Our real entry; the same with one field changed to noise or left out; or entries of real
    and made-up fields, with our ids and secrets or others'."""
    changed = st.sampled_from(sorted(valid)).flatmap(lambda key: json_values.map(lambda v: {**valid, key: v}))
    left_out = st.sampled_from(sorted(valid)).map(lambda key: {k: v for k, v in valid.items() if k != key})
    named = st.fixed_dictionaries(
        {},
        optional={
            "subscriptionId": st.sampled_from([valid["subscriptionId"], str(uuid.uuid4())]) | json_values,
            "clientState": st.sampled_from([valid["clientState"], "not-the-secret"]) | json_values,
            "resource": st.just(valid["resource"]) | json_values,
            "tenantId": st.just(str(uuid.uuid4())) | json_values,
            **fields,
        },
    )
    others = st.dictionaries(st.text(max_size=12), json_values, max_size=3)
    made_up = st.tuples(others, named).map(lambda pair: {**pair[0], **pair[1]})
    return st.one_of(st.just(valid), changed, left_out, made_up)


def bodies(entry: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    envelope = st.fixed_dictionaries({"value": st.lists(entry, max_size=5)})
    return st.one_of(
        envelope.map(lambda body: json.dumps(body).encode()),
        json_values.map(lambda body: json.dumps(body).encode()),
        st.binary(max_size=512),
    )


def post_all(env: FaultStack, route: str, body: bytes) -> None:
    response = httpx.post(
        f"{env.stack.functions_url}/api/notifications/{route}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code in ANSWERS, (response.status_code, response.text, body[:200])


def assert_only_ours_queued(env: FaultStack, ours: dict[str, dict[str, str]], route: str) -> None:
    """What this test's fuzzing queued (taken off the queue, so no test depends on another's):
    only notifications for our own subscription, and at least one."""
    queue = env.storage.queue(NOTIFICATIONS_QUEUE)
    queued = []
    while batch := list(queue.receive_messages(max_messages=32, visibility_timeout=300)):
        for message in batch:
            queued.append(NotificationMessage.model_validate_json(message.content))
            queue.delete_message(message)
    notifications = [n for m in queued for n in m.notifications]
    assert notifications, f"the {route} intake never accepted a thing"
    assert {m.source for m in queued} == {route.split("/")[0]}
    assert {n.subscription_id for n in notifications} == {ours[route]["subscriptionId"]}
    if route == "graph/lifecycle":
        assert any(n.lifecycle_event == "missed" for n in notifications)


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def test_the_sharepoint_intake_answers_anything_without_a_5xx(env, ours):
    fields = {"expirationDateTime": timestamps, "siteUrl": st.just("/sites/fault") | json_values}

    @FUZZ
    @given(bodies(entries(ours["sharepoint"], fields)))
    def fuzz(body: bytes) -> None:
        post_all(env, "sharepoint", body)

    fuzz()
    assert_only_ours_queued(env, ours, "sharepoint")


@pytest.mark.parametrize("route", ["graph", "graph/lifecycle"])
def test_the_graph_intakes_answer_anything_without_a_5xx(env, ours, route):
    fields = {
        "changeType": st.sampled_from(["created", "updated", "deleted"]) | json_values,
        "lifecycleEvent": st.sampled_from(["missed", "reauthorizationRequired", "subscriptionRemoved"])
        | json_values,
        "subscriptionExpirationDateTime": timestamps,
        "resourceData": json_values,
    }

    @FUZZ
    @given(bodies(entries(ours[route], fields)))
    def fuzz(body: bytes) -> None:
        post_all(env, route, body)

    fuzz()
    assert_only_ours_queued(env, ours, route)
