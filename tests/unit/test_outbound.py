import logging
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from functions.core.outbound import RetryPolicy, ServiceThrottle, UpstreamError, parse_retry_after, send

FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_retry_after=30)


class ScriptedSession:
    """Answers each request with the next scripted response (or raises it)."""

    def __init__(self, *script):
        self.script = list(script)
        self.requests = []

    def request(self, method, url, **kwargs):
        self.requests.append((method, url, kwargs))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        status, headers, body = step
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        response._content = body.encode()
        return response


def call(session, *, idempotent=True, sleeps=None, throttle=None):
    return send(
        session,
        "POST",
        "https://contoso.sharepoint.com/x",
        service="sharepoint",
        operation="get changes",
        subscription_id="sub-9",
        idempotent=idempotent,
        policy=FAST,
        sleep=(sleeps.append if sleeps is not None else lambda _: None),
        throttle=throttle,
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_429_holds_every_call_to_the_service_until_its_retry_after_has_passed():
    clock = FakeClock()
    throttle = ServiceThrottle(clock)
    with pytest.raises(UpstreamError):
        call(ScriptedSession(*[(429, {"Retry-After": "7"}, "")] * 4), throttle=throttle)
    clock.now += 5
    # Another call, for anything: it waits out what is left before it goes out.
    other = ScriptedSession((200, {}, "{}"))
    sleeps: list[float] = []
    assert call(other, sleeps=sleeps, throttle=throttle).status_code == 200
    assert sleeps == [pytest.approx(2.0)]


def test_a_call_held_longer_than_the_policy_waits_is_handed_back_unsent():
    throttle = ServiceThrottle(FakeClock())
    throttle.hold(120)
    untouched = ScriptedSession()
    with pytest.raises(UpstreamError) as caught:
        call(untouched, throttle=throttle)
    assert (caught.value.status, caught.value.retry_after) == (429, 120.0)
    assert untouched.requests == []


def test_a_503_holds_only_the_request_it_answered():
    throttle = ServiceThrottle(FakeClock())
    call(ScriptedSession((503, {"Retry-After": "9"}, ""), (200, {}, "{}")), throttle=throttle)
    assert throttle.remaining() == 0


def test_a_429_is_retried_after_the_seconds_retry_after_names():
    session = ScriptedSession((429, {"Retry-After": "7"}, ""), (200, {}, "{}"))
    sleeps: list[float] = []
    assert call(session, sleeps=sleeps).status_code == 200
    assert sleeps == [7.0]


def test_a_503_is_retried_even_for_a_request_that_is_not_idempotent():
    session = ScriptedSession((503, {"Retry-After": "1"}, ""), (201, {}, "{}"))
    assert call(session, idempotent=False).status_code == 201


def test_a_500_is_not_retried_when_the_request_is_not_idempotent():
    session = ScriptedSession((500, {}, '{"odata.error":{"code":"-1, X","message":{"value":"boom"}}}'))
    with pytest.raises(UpstreamError) as caught:
        call(session, idempotent=False)
    assert (caught.value.status, caught.value.code, caught.value.upstream_message) == (500, "-1, X", "boom")
    assert len(session.requests) == 1


def test_retries_are_bounded_and_the_last_error_is_raised():
    session = ScriptedSession(*[(429, {"Retry-After": "0"}, "")] * 4)
    with pytest.raises(UpstreamError) as caught:
        call(session)
    assert caught.value.status == 429
    assert len(session.requests) == 4


def test_a_retry_after_longer_than_the_policy_allows_is_handed_back_not_slept():
    session = ScriptedSession((429, {"Retry-After": "120"}, ""))
    sleeps: list[float] = []
    with pytest.raises(UpstreamError) as caught:
        call(session, sleeps=sleeps)
    assert caught.value.retry_after == 120.0
    assert sleeps == []


def test_network_errors_are_retried_for_idempotent_requests():
    session = ScriptedSession(requests.ConnectionError("refused"), (200, {}, "{}"))
    assert call(session).status_code == 200


def test_network_errors_are_not_retried_for_requests_that_are_not_idempotent():
    session = ScriptedSession(requests.ConnectionError("refused"))
    with pytest.raises(UpstreamError) as caught:
        call(session, idempotent=False)
    assert caught.value.status is None


def test_every_failure_is_logged_with_the_operation_and_the_subscription(caplog):
    session = ScriptedSession((429, {"Retry-After": "0"}, ""), (404, {"request-id": "r-1"}, "{}"))
    with caplog.at_level(logging.WARNING), pytest.raises(UpstreamError):
        call(session)
    assert all("get changes" in m and "sub-9" in m for m in caplog.messages)
    assert "r-1" in caplog.messages[-1]


def test_graph_errors_are_read_too():
    session = ScriptedSession((400, {}, '{"error":{"code":"InvalidRequest","message":"bad"}}'))
    with pytest.raises(UpstreamError) as caught:
        call(session)
    assert (caught.value.code, caught.value.upstream_message) == ("InvalidRequest", "bad")


def test_retry_after_may_be_an_http_date():
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("Fri, 27 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Fri, 27 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_the_connection_pools_hold_every_call_one_instance_makes_at_once():
    import json
    from pathlib import Path

    from functions.core.outbound import CONNECTION_POOL_SIZE, new_session
    from functions.core.settings import StorageSettings
    from functions.core.storage import Storage
    from functions.core.subscriptions.renewal import RENEWAL_CONCURRENCY

    host = json.loads((Path(__file__).parents[2] / "host.json").read_text())
    queues = host["extensions"]["queues"]
    assert queues["batchSize"] + queues["newBatchThreshold"] + RENEWAL_CONCURRENCY <= CONNECTION_POOL_SIZE
    storage = Storage(StorageSettings(connection_string="UseDevelopmentStorage=true"))
    table: Any = storage.table("checkpoints")
    queue: Any = storage.queue("notifications")
    sessions = {
        "Microsoft 365": new_session(),
        "a table client": table._client._client._pipeline._transport.session,
        "a queue client": queue._pipeline._transport.session,
    }
    for name, session in sessions.items():
        adapter = session.get_adapter("https://contoso.sharepoint.com/")
        assert isinstance(adapter, requests.adapters.HTTPAdapter), name
        assert adapter.poolmanager.connection_pool_kw["maxsize"] == CONNECTION_POOL_SIZE, name
