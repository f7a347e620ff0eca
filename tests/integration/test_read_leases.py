"""One reader per list: the read lease against real Azurite (its ETags decide every race)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from functions.core.outbound import UpstreamError
from functions.core.read_leases import READ_LEASE, Outcome, ReadCoordinator, ReadLeaseStore
from functions.core.sources.sharepoint import SHAREPOINT


def now() -> datetime:
    return datetime.now(UTC)


def must_not_read() -> None:
    pytest.fail("this notification must not cause a read")


@pytest.fixture
def leases(services) -> ReadLeaseStore:
    return ReadLeaseStore(services.storage)


@pytest.fixture
def coordinator(leases) -> ReadCoordinator:
    return ReadCoordinator(leases, clock=now)


@pytest.fixture
def other_instance(leases) -> ReadCoordinator:
    """A worker on another instance: the same lease table, its own memory."""
    return ReadCoordinator(leases, clock=now)


@pytest.fixture
def scope() -> str:
    return uuid.uuid4().hex


def test_a_notification_received_before_a_completed_read_began_costs_no_read(coordinator, scope):
    notified = now()
    reads = []
    first = coordinator.read(SHAREPOINT, scope, notified, lambda: reads.append("first"))
    again = coordinator.read(SHAREPOINT, scope, notified, lambda: reads.append("again"))
    assert (first.outcome, again.outcome, reads) == (Outcome.READ, Outcome.COVERED, ["first"])


def test_a_notification_received_after_the_last_read_began_is_read(coordinator, scope):
    reads = []
    coordinator.read(SHAREPOINT, scope, now(), lambda: reads.append(1))
    later = coordinator.read(SHAREPOINT, scope, now(), lambda: reads.append(2))
    assert (later.outcome, reads) == (Outcome.READ, [1, 2])


def test_a_notification_arriving_during_a_read_is_read_after_it(coordinator, other_instance, scope):
    outcomes = []
    reads = []

    def read() -> int:
        reads.append(now())
        if len(reads) == 1:  # a second worker's message, received while this read runs
            outcomes.append(other_instance.read(SHAREPOINT, scope, now(), must_not_read))
        return len(reads)

    result = coordinator.read(SHAREPOINT, scope, now(), read)
    assert result.outcome is Outcome.READ
    assert result.results == (1, 2)
    [busy] = outcomes
    assert busy.outcome is Outcome.BUSY
    assert 1 <= busy.recheck_seconds <= 15


def test_a_notification_from_before_the_running_read_adds_no_read(coordinator, other_instance, scope):
    before = now()
    waiting = []

    def read() -> str:
        waiting.append(other_instance.read(SHAREPOINT, scope, before, must_not_read))
        return "read"

    result = coordinator.read(SHAREPOINT, scope, now(), read)
    assert result.results == ("read",)
    assert waiting[0].outcome is Outcome.BUSY  # put back, in case this reader dies
    assert coordinator.read(SHAREPOINT, scope, before, must_not_read).outcome is Outcome.COVERED


def test_a_failed_read_covers_nothing_and_lets_go(coordinator, leases, scope):
    notified = now()

    def fail() -> None:
        raise RuntimeError("SharePoint is down")

    with pytest.raises(RuntimeError):
        coordinator.read(SHAREPOINT, scope, notified, fail)
    assert leases.read(scope, SHAREPOINT).holder is None
    retried = coordinator.read(SHAREPOINT, scope, notified, lambda: "read")
    assert retried.results == ("read",)


def test_a_throttled_read_keeps_the_list_until_its_retry_after_has_passed(coordinator, leases, scope):
    def throttled() -> None:
        raise UpstreamError(
            service="SharePoint", operation="GetChanges", status=429, message="throttled", retry_after=5
        )

    with pytest.raises(UpstreamError):
        coordinator.read(SHAREPOINT, scope, now(), throttled, holder="message-1")
    # Another notification for the list must not ask SharePoint again before the Retry-After.
    other = coordinator.read(SHAREPOINT, scope, now(), must_not_read, holder="message-2")
    assert other.outcome is Outcome.BUSY
    assert 5 <= other.recheck_seconds <= 6
    assert leases.read(scope, SHAREPOINT).dirty  # it arrived after the throttled read began
    retry = coordinator.read(SHAREPOINT, scope, now(), lambda: "read", holder="message-1")
    assert retry.results == ("read",)


def test_a_reader_whose_lease_was_deleted_meanwhile_lets_go_and_the_next_starts_anew(
    coordinator, leases, scope, caplog
):
    def read_while_the_subscription_is_deleted() -> str:
        leases.write(leases.read(scope, SHAREPOINT), dirty=True)  # a notification came
        leases.delete(scope, SHAREPOINT)
        return "read"

    first = coordinator.read(SHAREPOINT, scope, now(), read_while_the_subscription_is_deleted)
    assert first.results == ("read",)
    assert leases.read(scope, SHAREPOINT).etag is None
    assert "could not release" not in caplog.text  # a lease gone is a lease lost, not a failure
    assert coordinator.read(SHAREPOINT, scope, now(), lambda: "again").results == ("again",)


def test_the_lease_of_a_reader_that_died_is_taken_once_it_expires(coordinator, leases, scope):
    notified = now()
    dead = leases.read(scope, SHAREPOINT)
    leases.write(dead, holder="dead", expires_at=now() + READ_LEASE, read_started=now(), dirty=True)
    assert coordinator.read(SHAREPOINT, scope, notified, must_not_read).outcome is Outcome.BUSY

    expired = leases.read(scope, SHAREPOINT)
    leases.write(expired, expires_at=now() - timedelta(seconds=1))
    assert coordinator.read(SHAREPOINT, scope, notified, lambda: "read").results == ("read",)


def test_the_sweep_neither_waits_for_nor_disturbs_a_running_read(coordinator, other_instance, leases, scope):
    swept = []

    def read() -> str:
        swept.append(other_instance.read(SHAREPOINT, scope, None, must_not_read))
        assert not leases.read(scope, SHAREPOINT).dirty
        return "read"

    assert coordinator.read(SHAREPOINT, scope, now(), read).results == ("read",)
    assert swept[0].outcome is Outcome.BUSY
    assert coordinator.read(SHAREPOINT, scope, None, lambda: "swept").results == ("swept",)


def test_sixteen_workers_on_one_burst_read_the_list_once(coordinator, scope):
    burst_received = now()
    reads = []
    outcomes = []
    start = threading.Barrier(16)

    def worker() -> None:
        start.wait()
        result = coordinator.read(SHAREPOINT, scope, burst_received, lambda: reads.append(1))
        outcomes.append(result.outcome)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 1
    assert outcomes.count(Outcome.READ) == 1
    assert set(outcomes) <= {Outcome.READ, Outcome.BUSY, Outcome.COVERED}


def test_workers_on_two_instances_read_a_burst_once_or_twice(coordinator, other_instance, scope):
    burst_received = now()
    reads = []
    outcomes = []
    start = threading.Barrier(16)

    def worker(instance: ReadCoordinator) -> None:
        start.wait()
        result = instance.read(SHAREPOINT, scope, burst_received, lambda: reads.append(1))
        outcomes.append(result.outcome)

    threads = [threading.Thread(target=worker, args=(i,)) for i in [coordinator, other_instance] * 8]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 1  # the burst was received before the one read began
    assert outcomes.count(Outcome.READ) == 1


def test_the_retry_of_a_message_whose_attempt_died_takes_its_lease_over_at_once(coordinator, leases, scope):
    notified = now()
    dead_attempt = leases.read(scope, SHAREPOINT)
    leases.write(dead_attempt, holder="message-1", expires_at=now() + READ_LEASE, read_started=now())
    other = coordinator.read(SHAREPOINT, scope, notified, must_not_read, holder="message-2")
    assert other.outcome is Outcome.BUSY
    retry = coordinator.read(SHAREPOINT, scope, notified, lambda: "read", holder="message-1")
    assert retry.results == ("read",)


def test_turns_on_one_key_follow_each_other_within_an_instance(coordinator):
    events = []
    first_inside = threading.Event()

    def first() -> None:
        with coordinator.turn("sharepoint/sub-1"):
            first_inside.set()
            events.append("first in")
            time.sleep(0.2)
            events.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    first_inside.wait()
    with coordinator.turn("sharepoint/sub-1"):
        events.append("second in")
    thread.join()
    assert events == ["first in", "first out", "second in"]
