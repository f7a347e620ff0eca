"""A sink's cursor over the change log, against Azurite: what is owed is never skipped, a retry
resends the same message, a delete or a rotation made during a delivery stays done, and the table
holds no credential. The receiver is scripted here; the e2e and fault suites use the emulator's."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.core.models import ChangeView
from functions.core.resources import DELIVERIES_QUEUE, SINKS_TABLE
from functions.core.sinks.delivery import Drained, DrainReport, Signal, SinkDelivery
from functions.core.sinks.record import Sink, SinkState
from functions.core.sinks.sender import Outcome
from functions.core.sinks.service import CreateSinkRequest, ReplayRequest, RotateSecretRequest, SinkService

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@dataclass
class ScriptedReceiver:
    """Answers with the next scripted outcome (then 2xx); records every message it was sent."""

    script: list[Outcome | Exception] = field(default_factory=list)
    sent: list[tuple[str, list[str]]] = field(default_factory=list)
    hold: threading.Event | None = None
    holding: threading.Event = field(default_factory=threading.Event)

    def send(self, sink: Sink, message_id: str, changes: list[ChangeView], now: datetime) -> Outcome:
        if self.hold is not None:
            self.holding.set()
            self.hold.wait(30)
        self.sent.append((message_id, [change.id for change in changes]))
        answer = self.script.pop(0) if self.script else Outcome(True, 204, "HTTP 204")
        if isinstance(answer, Exception):
            raise answer
        return answer

    def rows(self) -> list[str]:
        return [row for _, rows in self.sent for row in rows]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Connectors:
    delivery: SinkDelivery
    sinks: SinkService
    receiver: ScriptedReceiver
    clock: Clock
    scope: str
    subscription_id: str
    services: Any

    def add_sink(self, url: str = "http://127.0.0.1:9/hook", **fields: Any) -> Sink:
        request = CreateSinkRequest.model_validate({"type": "webhook", "url": url, **fields})
        sink, _ = self.sinks.create(self.subscription_id, request)
        return sink

    def write_rows(self, first: int, count: int, at: datetime = T0) -> list[str]:
        rows = [
            {
                "RowKey": f"{n:020d}",
                "subscriptionId": self.subscription_id,
                "source": "sharepoint",
                "changeType": "update",
                "itemId": n,
                "time": at + timedelta(seconds=n),
            }
            for n in range(first, first + count)
        ]
        return self.services.change_log.append(self.scope, rows)

    def drain(self, sink: Sink, why: str = "rows", holder: str = "message-1") -> DrainReport:
        return self.delivery.drain(Signal(sink.scope, sink.id, why).to_message(), holder=holder)

    def cursor(self, sink: Sink):
        return self.delivery.cursors.get(sink.scope, sink.id)


@pytest.fixture
def connectors(services, subscription) -> Connectors:
    services.storage.queue(DELIVERIES_QUEUE).clear_messages()
    receiver = ScriptedReceiver()
    clock = Clock()
    delivery = replace(services.delivery, sender=receiver, clock=clock)
    sinks = replace(services.sinks, delivery=delivery, clock=clock)
    return Connectors(delivery, sinks, receiver, clock, subscription.scope, subscription.id, services)


def test_every_row_is_sent_in_log_order_and_the_cursor_moves_only_on_a_2xx(connectors):
    sink = connectors.add_sink()
    keys = connectors.write_rows(1, 450)
    connectors.drain(sink)
    assert [len(rows) for _, rows in connectors.receiver.sent] == [200, 200, 50]
    assert connectors.receiver.rows() == keys
    assert connectors.cursor(sink).position == keys[-1]
    connectors.drain(sink)
    assert len(connectors.receiver.sent) == 3  # nothing owed, nothing sent


def test_a_new_sink_is_sent_only_what_comes_after_it(connectors):
    connectors.write_rows(1, 5)
    sink = connectors.add_sink()
    later = connectors.write_rows(6, 2)
    connectors.drain(sink)
    assert connectors.receiver.rows() == later


@pytest.mark.parametrize("rows", [10, 250], ids=["a partial batch", "a full batch"])
def test_a_retry_after_a_crash_sends_the_same_rows_under_the_same_id(connectors, rows):
    sink = connectors.add_sink()
    keys = connectors.write_rows(1, rows)
    connectors.receiver.script = [RuntimeError("host killed while the receiver was answering")]
    with pytest.raises(RuntimeError):
        connectors.drain(sink)
    connectors.write_rows(rows + 1, 5)  # more rows land before the retry
    connectors.drain(sink)  # the same queue message, visible again
    (crashed_id, crashed_rows), (retried_id, retried_rows), *rest = connectors.receiver.sent
    assert (retried_id, retried_rows) == (crashed_id, crashed_rows) == (crashed_id, keys[:200])
    assert crashed_id not in {message_id for message_id, _ in rest}
    assert [row for _, later in rest for row in later] == [
        *keys[200:],
        *(f"{n:020d}" for n in range(rows + 1, rows + 6)),
    ]


def test_a_failure_backs_off_honouring_retry_after_up_to_an_hour_and_loses_nothing(connectors):
    sink = connectors.add_sink()
    keys = connectors.write_rows(1, 3)
    connectors.receiver.script = [Outcome(False, 503, "HTTP 503", retry_after=604800)]
    connectors.drain(sink)
    cursor = connectors.cursor(sink)
    assert cursor.position < keys[0] and cursor.attempts == 1
    assert cursor.next_attempt_at == T0 + timedelta(hours=1)
    connectors.write_rows(4, 1)
    # A new signal waits for the scheduled retry.
    assert connectors.drain(sink).ended is Drained.BACKING_OFF
    connectors.drain(sink, why="retry")
    assert connectors.receiver.rows() == [*keys, *keys, f"{4:020d}"]
    assert connectors.cursor(sink).attempts == 0


def test_failing_past_the_limit_disables_and_enable_resumes_where_it_stopped(connectors):
    sink = connectors.add_sink()
    first = connectors.write_rows(1, 2)
    connectors.receiver.script = [Outcome(False, 500, "HTTP 500"), Outcome(False, 500, "HTTP 500")]
    connectors.drain(sink)
    connectors.clock.now = T0 + timedelta(hours=73)
    assert connectors.drain(sink, why="retry").ended is Drained.DISABLED_NOW
    disabled = connectors.sinks.get(connectors.subscription_id, sink.id)
    assert disabled.state is SinkState.DISABLED and "failing since" in disabled.disabled_reason
    meanwhile = connectors.write_rows(3, 2)
    assert connectors.drain(sink).ended is Drained.DISABLED
    connectors.sinks.enable(connectors.subscription_id, sink.id)
    connectors.drain(sink, why="enable")
    assert connectors.receiver.rows()[-4:] == [*first, *meanwhile]


def test_a_410_disables_the_sink_and_keeps_its_cursor(connectors):
    sink = connectors.add_sink()
    keys = connectors.write_rows(1, 2)
    connectors.receiver.script = [Outcome(False, 410, "HTTP 410", gone=True)]
    report = connectors.drain(sink)
    assert (report.ended, report.detail) == (Drained.DISABLED_NOW, "the receiver answered 410 Gone")
    assert connectors.sinks.get(connectors.subscription_id, sink.id).state is SinkState.DISABLED
    assert connectors.cursor(sink).inflight.rows == tuple(keys)


def during_a_delivery(connectors: Connectors, sink: Sink, action: Callable[[], object]) -> None:
    """Run `action` while the receiver holds a delivery open."""
    connectors.receiver.hold = threading.Event()
    worker = threading.Thread(target=connectors.drain, args=(sink,))
    worker.start()
    assert connectors.receiver.holding.wait(30)
    action()
    connectors.receiver.hold.set()
    worker.join(30)


def test_a_rotation_made_during_a_delivery_stays_done(connectors):
    sink = connectors.add_sink()
    connectors.write_rows(1, 1)
    rotated: list[str] = []
    during_a_delivery(
        connectors,
        sink,
        lambda: rotated.append(
            connectors.sinks.rotate_secret(connectors.subscription_id, sink.id, RotateSecretRequest())[1]
        ),
    )
    stored = connectors.sinks.get(connectors.subscription_id, sink.id)
    assert stored.secret == rotated[0]
    assert connectors.cursor(sink).batches_delivered == 1


def test_a_sink_deleted_during_a_delivery_does_not_come_back(connectors):
    sink = connectors.add_sink()
    connectors.write_rows(1, 1)
    during_a_delivery(connectors, sink, lambda: connectors.sinks.delete(connectors.subscription_id, sink.id))
    assert connectors.delivery.sinks.get(sink.scope, sink.id) is None
    assert connectors.cursor(sink) is None
    connectors.receiver.hold = None
    connectors.write_rows(2, 1)
    assert connectors.drain(sink).ended is Drained.REMOVED


def test_a_graph_row_written_behind_the_position_moves_it_back(connectors):
    sink = connectors.add_sink()
    connectors.write_rows(10, 2)
    connectors.drain(sink)
    late = connectors.write_rows(5, 1)  # Graph: a delta page with an older change
    assert connectors.delivery.signal(connectors.scope, connectors.subscription_id, late, "graph") == 1
    connectors.drain(sink)
    assert late[0] in connectors.receiver.sent[-1][1]


def test_sharepoint_rows_read_again_are_not_sent_again(connectors):
    """A read that starts again from an older checkpoint (a taken-over read lease, a retried
    message) writes the same rows again: SharePoint's log only grows at its end, so they were sent."""
    sink = connectors.add_sink()
    keys = connectors.write_rows(1, 5)
    connectors.drain(sink)
    again = connectors.write_rows(1, 5)
    assert connectors.delivery.signal(connectors.scope, connectors.subscription_id, again, "sharepoint") == 1
    connectors.drain(sink)
    assert connectors.receiver.rows() == keys


def test_a_replay_sends_a_time_range_again_once_oldest_first_under_new_ids(connectors):
    sink = connectors.add_sink()
    keys = connectors.write_rows(1, 6)
    connectors.drain(sink)
    first_id = connectors.receiver.sent[0][0]
    request = ReplayRequest.model_validate(
        {"since": T0 + timedelta(seconds=2), "until": T0 + timedelta(seconds=4)}
    )
    assert connectors.sinks.replay(connectors.subscription_id, sink.id, request) == 3
    connectors.drain(sink, why="replay")
    replay_id, replayed = connectors.receiver.sent[-1]
    assert replayed == keys[1:4] and replay_id != first_id
    connectors.drain(sink)
    assert len(connectors.receiver.sent) == 2  # once


def test_catch_up_signals_only_the_sinks_still_owed_rows(connectors, services):
    owed = connectors.add_sink()
    done = connectors.add_sink()
    connectors.write_rows(1, 2)
    connectors.drain(done)
    services.storage.queue(DELIVERIES_QUEUE).clear_messages()
    assert connectors.delivery.catch_up() == 1
    [message] = services.storage.queue(DELIVERIES_QUEUE).receive_messages()
    assert Signal.from_message(message.content).sink_id == owed.id


def test_the_sinks_table_holds_no_secret_and_no_signature(connectors, services):
    connectors.add_sink(
        url="http://127.0.0.1:9/workflow?api-version=1&sig=TOPSECRETSIG", type="teams-workflow"
    )
    webhook = connectors.add_sink(secret="whsec_" + "QUJD" * 8)
    entities = [dict(entity) for entity in services.storage.table(SINKS_TABLE).list_entities()]
    dumped = repr(entities)
    assert "TOPSECRETSIG" not in dumped and "whsec_" not in dumped and "QUJD" not in dumped
    assert connectors.sinks.get(connectors.subscription_id, webhook.id).secret == "whsec_" + "QUJD" * 8


def test_deleting_a_subscription_deletes_its_sinks(connectors, services):
    sink = connectors.add_sink()
    connectors.sinks.delete_subscription(connectors.subscription_id)
    assert services.delivery.sinks.of_scope(sink.scope) == []
    assert connectors.cursor(sink) is None


def test_a_sink_stored_in_plaintext_before_sealing_is_sealed_when_first_read_and_gets_a_cursor(
    connectors, services
):
    secret = "whsec_" + "TEVHQUNZ" * 4
    services.storage.table(SINKS_TABLE).create_entity(
        {
            "PartitionKey": connectors.scope,
            "RowKey": "sink_legacy",
            "subscriptionId": connectors.subscription_id,
            "type": "webhook",
            "url": "http://127.0.0.1:9/hook?token=LEGACYTOKEN",
            "secret": secret,
            "changeTypes": "[]",
            "createdDateTime": T0,
            "state": "active",
            "lastDelivery": "{}",
        }
    )
    sink = connectors.sinks.get(connectors.subscription_id, "sink_legacy")
    assert (sink.url, sink.secret) == ("http://127.0.0.1:9/hook?token=LEGACYTOKEN", secret)
    raw = repr(dict(services.storage.table(SINKS_TABLE).get_entity(connectors.scope, "sink_legacy")))
    assert "LEGACYTOKEN" not in raw and secret not in raw and "TEVHQUNZ" not in raw
    keys = connectors.write_rows(1, 1)
    connectors.drain(sink)  # no cursor yet: it starts at the end of the log
    connectors.write_rows(2, 1)
    connectors.drain(sink)
    assert connectors.receiver.rows() == [f"{2:020d}"]
    assert keys[0] not in connectors.receiver.rows()


def test_teams_slots_are_shared_by_every_instance_sending_to_one_url(services):
    """Two instances (two gates on one storage account) sending to one workflow URL at the same
    moment are spaced a quarter second apart, as Teams' 4 requests a second asks."""
    from functions.core.sinks.rate import RateGate

    slept: list[float] = []
    frozen = 1_000_000.0
    url = f"https://default1.environment.api.powerplatform.com/workflows/{uuid.uuid4().hex}"
    first, second = (RateGate(services.storage, clock=lambda: frozen, sleep=slept.append) for _ in range(2))
    for gate in (first, second, first, second, first):
        gate.wait(url, 4.0)
    assert slept == [0.25, 0.5, 0.75, 1.0]
    RateGate(services.storage, clock=lambda: frozen, sleep=slept.append).wait(url + "/other", 4.0)
    assert len(slept) == 4  # another URL has slots of its own
