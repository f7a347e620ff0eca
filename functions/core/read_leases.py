"""One reader per list at a time, so a burst of notifications costs a read or two, not one each.

SharePoint and Graph send a notification per change (and retry them), so one busy list can put
hundreds of messages on the queue, each asking for the same read. The `readleases` table keeps,
per list (or Graph resource), who is reading it now, when that read began, when the last completed
read began, and a dirty flag:

- a notification received before the last completed read began is already covered: no read;
- one that finds another reader at work marks the lease dirty if it arrived after that read
  began (the reader then reads once more before letting go), and is put back on the queue to look
  again later: if the reader dies, the message is still there to read for itself;
- otherwise the worker takes the lease and reads, again (at most every MIN_READ_INTERVAL) while
  the lease is dirty;
- a read that was throttled keeps the lease until its Retry-After has passed: SharePoint and
  Graph throttle an app that asks again sooner, whichever message asks.

Every write is guarded by the entity's ETag. The times compared come from the intake's and the
worker's clocks (NTP-synchronised in Azure); SharePoint and Graph deliver a notification well after
the change it announces, so a skew would have to exceed that delay to hide a change.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Generic, TypeVar

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from .outbound import throttled_wait
from .resources import READ_LEASES_TABLE
from .storage import Storage, TableRepository, outages_reported

log = logging.getLogger(__name__)

# Leases this instance remembers (a scope's is about 200 bytes).
MAX_KNOWN_LEASES = 10_000
# Longer than a read of a busy list takes; a reader that dies holds the list no longer than this.
READ_LEASE = timedelta(seconds=60)
# A message that found the list busy looks again after at most this long.
MAX_RECHECK_SECONDS = 15
# In-process turns per subscription: striped locks, so memory does not grow with the keys seen.
TURN_STRIPES = 64
MAX_TURN_WAIT_SECONDS = 10
# While notifications keep arriving, a list is read at most this often: a burst spread over a few
# seconds costs a read or two more, not one per notification, and a change in it waits no longer.
MIN_READ_INTERVAL = timedelta(seconds=2)

Result = TypeVar("Result")


@dataclass(frozen=True)
class ReadLease:
    source: str
    scope: str
    etag: str | None = None  # None: no entity yet
    holder: str | None = None
    expires_at: datetime | None = None
    read_started: datetime | None = None
    completed_read_started: datetime | None = None
    dirty: bool = False

    def held_by_another(self, holder: str, now: datetime) -> bool:
        return (
            self.holder is not None
            and self.holder != holder
            and self.expires_at is not None
            and self.expires_at > now
        )

    def covers(self, notified_at: datetime) -> bool:
        """A read that began after the notification was received has completed."""
        return self.completed_read_started is not None and notified_at < self.completed_read_started


class LeaseLost(Exception):
    """The lease changed under us (another writer's ETag): read it again and decide again."""


class ReadLeaseStore(TableRepository):
    """The leases, and the last one this instance read or wrote of each scope: a lease is read from
    storage only when that is unknown or turns out stale (a write under its ETag fails), so a read
    costs two lease writes, not a read and two writes."""

    table_name = READ_LEASES_TABLE

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage)
        self._known: dict[tuple[str, str], ReadLease] = {}
        self._known_lock = threading.Lock()

    def read(self, scope: str, source: str, *, fresh: bool = False) -> ReadLease:
        """The lease as this instance last saw it, or, `fresh` or never seen, as stored. One never
        seen is taken as absent: creating it then fails (LeaseLost) if it was there."""
        if not fresh:
            with self._known_lock:
                return self._known.get((source, scope)) or ReadLease(source=source, scope=scope)
        with outages_reported(f"reading the read lease of {scope}"):
            try:
                entity = self._table.get_entity(source, scope)
            except ResourceNotFoundError:
                return self._remember(ReadLease(source=source, scope=scope))
        return self._remember(
            ReadLease(
                source=source,
                scope=scope,
                etag=str(entity.metadata["etag"]),
                holder=entity.get("holder") or None,
                expires_at=entity.get("expiresAt"),
                read_started=entity.get("readStartedAt"),
                completed_read_started=entity.get("completedReadStartedAt"),
                dirty=bool(entity.get("dirty", False)),
            )
        )

    def _remember(self, lease: ReadLease) -> ReadLease:
        with self._known_lock:
            if len(self._known) >= MAX_KNOWN_LEASES:
                self._known.clear()
            self._known[(lease.source, lease.scope)] = lease
        return lease

    def _forget(self, source: str, scope: str) -> None:
        with self._known_lock:
            self._known.pop((source, scope), None)

    def write(self, lease: ReadLease, **changes: Any) -> ReadLease:
        """Write `lease` with `changes` if nobody wrote it since it was read; raises LeaseLost."""

        updated = replace(lease, **changes)
        entity: dict[str, Any] = {
            "PartitionKey": updated.source,
            "RowKey": updated.scope,
            "holder": updated.holder or "",
            "dirty": updated.dirty,
        }
        for name, value in (
            ("expiresAt", updated.expires_at),
            ("readStartedAt", updated.read_started),
            ("completedReadStartedAt", updated.completed_read_started),
        ):
            if value is not None:
                entity[name] = value
        with outages_reported(f"writing the read lease of {lease.scope}"):
            try:
                if lease.etag is None:
                    metadata = self._table.create_entity(entity)
                else:
                    metadata = self._replace_if_unchanged(entity, lease.etag)
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as error:
                self._forget(lease.source, lease.scope)
                raise LeaseLost(lease.scope) from error
        return self._remember(replace(updated, etag=str(metadata["etag"])))

    def delete(self, scope: str, source: str) -> None:
        """Forget the list's lease (its subscription is gone). A reader still at work finds its
        lease lost and lets go; the next reader starts a new one."""
        self._forget(source, scope)
        with outages_reported(f"deleting the read lease of {scope}"):
            self._table.delete_entity(source, scope)


class Outcome(Enum):
    READ = "read"
    # A completed read began after the notification arrived: nothing to do.
    COVERED = "covered"
    # Another worker is reading the list: look again in `recheck_seconds`.
    BUSY = "busy"


@dataclass(frozen=True)
class CoalescedRead(Generic[Result]):
    outcome: Outcome
    results: tuple[Result, ...] = ()
    recheck_seconds: int = 0


def new_turns() -> tuple[threading.Lock, ...]:
    return tuple(threading.Lock() for _ in range(TURN_STRIPES))


@dataclass(frozen=True)
class ReadCoordinator:
    leases: ReadLeaseStore
    clock: Callable[[], datetime]
    pause: Callable[[float], None] = time.sleep
    _turns: tuple[threading.Lock, ...] = field(default_factory=new_turns, repr=False, compare=False)

    def read(
        self,
        source: str,
        scope: str,
        notified_at: datetime | None,
        read: Callable[[], Result],
        holder: str | None = None,
    ) -> CoalescedRead[Result]:
        """Run `read` for the list unless a read already covers `notified_at` or another worker is
        reading it; run it again while notifications arrive during it. `notified_at` None (the
        sweep) is never covered and never marks a busy list dirty. `holder` names the reader: a
        queue message's id, so that its retry takes over the lease a dead attempt left behind
        instead of waiting for it to expire."""
        holder = holder or uuid.uuid4().hex
        fresh = False
        while True:
            lease = self.leases.read(scope, source, fresh=fresh)
            now = self.clock()
            # A lease seen earlier can only be older than the stored one: a completed read it
            # shows still covers, a holder it shows may be gone (so look again before waiting).
            if notified_at is not None and lease.covers(notified_at):
                return CoalescedRead(Outcome.COVERED)
            try:
                if lease.held_by_another(holder, now):
                    if not fresh:
                        fresh = True
                        continue
                    return self._wait_for(lease, notified_at, now)
                begin = self._next_read_time(lease.completed_read_started, now)
                lease = self.leases.write(
                    lease, holder=holder, expires_at=begin + READ_LEASE, read_started=begin, dirty=False
                )
            except LeaseLost:
                fresh = True
                continue
            return CoalescedRead(Outcome.READ, self._read_while_dirty(lease, begin, read))

    @contextmanager
    def turn(self, key: str) -> Iterator[None]:
        """Within this instance, one caller at a time per key (striped, so memory does not grow
        with the keys seen). Bounded: past MAX_TURN_WAIT_SECONDS the lease alone decides."""
        lock = self._turns[zlib.crc32(key.encode()) % len(self._turns)]
        waited = lock.acquire(timeout=MAX_TURN_WAIT_SECONDS)
        try:
            yield
        finally:
            if waited:
                lock.release()

    def _wait_for(self, lease: ReadLease, notified_at: datetime | None, now: datetime) -> CoalescedRead[Any]:
        arrived_during_read = (
            notified_at is not None and lease.read_started is not None and notified_at >= lease.read_started
        )
        if arrived_during_read and not lease.dirty:
            self.leases.write(lease, dirty=True)
        remaining = math.ceil(((lease.expires_at or now) - now).total_seconds())
        return CoalescedRead(Outcome.BUSY, recheck_seconds=max(1, min(MAX_RECHECK_SECONDS, remaining)))

    def _read_while_dirty(
        self, lease: ReadLease, started: datetime, read: Callable[[], Result]
    ) -> tuple[Result, ...]:
        """Read at `started`, and again while the lease was marked dirty meanwhile."""
        results: list[Result] = []
        while True:
            # Notifications are still arriving: let them gather, so one read covers them all.
            self.pause(max(0.0, (started - self.clock()).total_seconds()))
            try:
                results.append(read())
            except BaseException as error:
                wait = throttled_wait(error)
                if wait is None:
                    self._let_go(lease, completed_read_started=None)
                else:
                    self._hold(lease, until=self.clock() + timedelta(seconds=wait))
                raise
            kept = self._let_go(lease, completed_read_started=started)
            if kept is None:
                return tuple(results)
            restarted = self._restart(kept, completed_read_started=started)
            if restarted is None or restarted.read_started is None:
                return tuple(results)
            lease, started = restarted, restarted.read_started

    def _let_go(self, lease: ReadLease, completed_read_started: datetime | None) -> ReadLease | None:
        """Release the lease; or, when it was marked dirty during a read that completed, keep it
        (returned as stored). A lease someone else has taken over is left alone."""
        while True:
            if lease.dirty and completed_read_started is not None:
                return lease
            try:
                self.leases.write(
                    lease,
                    holder=None,
                    expires_at=None,
                    completed_read_started=completed_read_started or lease.completed_read_started,
                )
                return None
            except LeaseLost:
                current = self._still_ours(lease)
                if current is None:
                    return None
                lease = current
            except Exception as error:
                # It expires by itself; messages that found it busy come back to look again.
                log.warning("could not release the read lease of %s: %s", lease.scope, error)
                return None

    def _hold(self, lease: ReadLease, until: datetime) -> None:
        """Keep the lease until `until`: the messages that find it busy come back after that, and
        the holder's own retry takes it over."""
        try:
            self._write_while_ours(lease, expires_at=until)
        except Exception as error:
            log.warning("could not keep the read lease of %s while throttled: %s", lease.scope, error)

    def _restart(self, lease: ReadLease, completed_read_started: datetime) -> ReadLease | None:
        """Record the completed read and plan the next one under the same lease."""
        begin = self._next_read_time(completed_read_started, self.clock())
        return self._write_while_ours(
            lease,
            expires_at=begin + READ_LEASE,
            read_started=begin,
            completed_read_started=completed_read_started,
            dirty=False,
        )

    def _write_while_ours(self, lease: ReadLease, **changes: Any) -> ReadLease | None:
        """Write `changes` to the lease we hold, reading it again when another writer (marking it
        dirty) came first; None once it is no longer ours."""
        while True:
            try:
                return self.leases.write(lease, **changes)
            except LeaseLost:
                current = self._still_ours(lease)
                if current is None:
                    return None
                lease = current

    @staticmethod
    def _next_read_time(completed_read_started: datetime | None, now: datetime) -> datetime:
        """Now, or for a list read moments ago, MIN_READ_INTERVAL after that read began. The lease
        says so (`readStartedAt`), so notifications arriving meanwhile know the read covers them."""
        if completed_read_started is None:
            return now
        return max(now, completed_read_started + MIN_READ_INTERVAL)

    def _still_ours(self, lease: ReadLease) -> ReadLease | None:
        """The lease as stored, if we still hold it. Not held at all: our own release went through
        on an attempt whose answer was lost (the SDK's retry then met the new ETag)."""
        current = self.leases.read(lease.scope, lease.source, fresh=True)
        if current.holder == lease.holder:
            return current
        if current.holder is not None:
            log.warning("the read lease of %s was taken over during a read", lease.scope)
        return None
