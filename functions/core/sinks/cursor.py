"""What each sink has been sent: its cursor in its scope's change log (an outbox).

One entity per sink in the `sinkcursors` table, partitioned like the change log. `position` is the
RowKey of the last row the receiver acknowledged with a 2xx; everything after it is owed. A batch
is cut and recorded (`inflight`) before it is sent, so a retry after a crash sends the same rows
under the same `webhook-id`. Every write is conditional on the ETag read: one deliverer holds the
cursor's lease at a time, and a replay, an enable or a rewind made meanwhile is never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from ..models import format_utc
from ..resources import SINK_CURSORS_TABLE
from ..storage import TableRepository, is_valid_key, outages_reported

# Conditional writes retried after another writer came first, before giving up.
MAX_WRITE_TRIES = 8


class CursorGone(LookupError):
    """The cursor was deleted (its sink was removed) while it was being written."""


@dataclass(frozen=True)
class InFlight:
    """A batch cut from the log and not yet acknowledged."""

    id: str
    rows: tuple[str, ...]
    # The position the batch was cut after (for a replay, the replay's position).
    start: str
    replay: bool = False

    @property
    def last(self) -> str:
        return self.rows[-1]


@dataclass(frozen=True)
class Replay:
    """A range asked to be sent again: rows whose change time is in [since, until], up to the
    position the cursor had when it was asked (rows after it are owed anyway)."""

    id: str
    since: datetime
    until: datetime
    through: str
    position: str = ""


@dataclass(frozen=True)
class SinkCursor:
    scope: str
    sink_id: str
    position: str = ""
    inflight: InFlight | None = None
    attempts: int = 0
    failing_since: datetime | None = None
    next_attempt_at: datetime | None = None
    lease_holder: str | None = None
    lease_until: datetime | None = None
    replay: Replay | None = None
    batches_delivered: int = 0
    last_delivery: dict[str, str] = field(default_factory=dict)
    etag: str | None = None

    def leased_by_other(self, holder: str, now: datetime) -> bool:
        return (
            self.lease_holder is not None
            and self.lease_holder != holder
            and self.lease_until is not None
            and self.lease_until > now
        )

    def backing_off(self, now: datetime) -> bool:
        return self.next_attempt_at is not None and self.next_attempt_at > now

    # The transitions a lease holder makes: each is None when `holder` no longer holds the lease,
    # so a deliverer that lost it writes nothing (CursorStore.update then leaves the cursor alone).

    def held(self, holder: str, **changes: Any) -> SinkCursor | None:
        """`changes` applied, if `holder` still holds the lease."""
        return replace(self, **changes) if self.lease_holder == holder else None

    def released(self, holder: str, **changes: Any) -> SinkCursor | None:
        """The lease let go, with `changes`, if `holder` still holds it."""
        return self.held(holder, lease_holder=None, lease_until=None, **changes)

    def acknowledged(self, holder: str, inflight: InFlight, note: dict[str, str]) -> SinkCursor | None:
        """The receiver took `inflight`: the position (or a replay's) moves past it, unless a
        rewind or a new replay came meanwhile, which stands."""
        if self.lease_holder != holder:
            return None
        done = replace(
            self,
            inflight=None if self.inflight and self.inflight.id == inflight.id else self.inflight,
            attempts=0,
            failing_since=None,
            batches_delivered=self.batches_delivered + 1,
            last_delivery=note,
        )
        if inflight.replay:
            if self.replay is not None and self.replay.position == inflight.start:
                return replace(done, replay=replace(self.replay, position=inflight.last))
            return done
        return replace(done, position=inflight.last) if self.position == inflight.start else done

    def view(self, now: datetime) -> dict[str, object]:
        """What the sink's view shows of its delivery."""
        body: dict[str, object] = {
            "position": self.position,
            "batchesDelivered": self.batches_delivered,
            "inProgress": self.lease_until is not None and self.lease_until > now,
        }
        if self.last_delivery:
            body["lastDelivery"] = dict(self.last_delivery)
        if self.attempts:
            body["failedAttempts"] = self.attempts
        if self.failing_since:
            body["failingSince"] = format_utc(self.failing_since)
        if self.next_attempt_at:
            body["nextAttemptDateTime"] = format_utc(self.next_attempt_at)
        if self.replay:
            body["replay"] = {"since": format_utc(self.replay.since), "until": format_utc(self.replay.until)}
        return body


class CursorStore(TableRepository):
    table_name = SINK_CURSORS_TABLE

    def create(self, cursor: SinkCursor) -> None:
        with outages_reported(f"creating the cursor of sink {cursor.sink_id}"):
            self._table.create_entity(_entity(cursor))

    def get(self, scope: str, sink_id: str) -> SinkCursor | None:

        if not (is_valid_key(scope) and is_valid_key(sink_id)):
            return None
        with outages_reported(f"reading the cursor of sink {sink_id}"):
            try:
                return _from_entity(self._table.get_entity(scope, sink_id))
            except ResourceNotFoundError:
                return None

    def of_scope(self, scope: str) -> list[SinkCursor]:
        with outages_reported(f"reading the sink cursors of {scope}"):
            entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": scope})
            return [_from_entity(entity) for entity in entities]

    def all(self) -> list[SinkCursor]:
        with outages_reported("reading every sink cursor"):
            return [_from_entity(entity) for entity in self._table.list_entities()]

    def update(
        self, cursor: SinkCursor, change: Callable[[SinkCursor], SinkCursor | None]
    ) -> SinkCursor | None:
        """Apply `change` to the cursor and write it under its ETag; when another writer came
        first, read it again and apply `change` to what it wrote. `change` returns None to give
        up (the lease was lost, say); so does this. Raises CursorGone if the sink was removed."""

        current = cursor
        for _ in range(MAX_WRITE_TRIES):
            changed = change(current)
            if changed is None:
                return None
            with outages_reported(f"writing the cursor of sink {cursor.sink_id}"):
                try:
                    metadata = self._replace_if_unchanged(_entity(changed), current.etag or "*")
                    return replace(changed, etag=metadata.get("etag"))
                except ResourceNotFoundError:
                    raise CursorGone(cursor.sink_id) from None
                except ResourceModifiedError:
                    pass
            fresh = self.get(cursor.scope, cursor.sink_id)
            if fresh is None:
                raise CursorGone(cursor.sink_id)
            current = fresh
        raise StorageContention(
            f"the cursor of sink {cursor.sink_id} kept changing under {MAX_WRITE_TRIES} writes"
        )

    def delete(self, scope: str, sink_id: str) -> None:
        with outages_reported(f"deleting the cursor of sink {sink_id}"):
            self._table.delete_entity(scope, sink_id)


class StorageContention(RuntimeError):
    """Too many writers at once on one record: the work is retried later."""


def _entity(cursor: SinkCursor) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": cursor.scope,
        "RowKey": cursor.sink_id,
        "position": cursor.position,
        "attempts": cursor.attempts,
        "batchesDelivered": cursor.batches_delivered,
        "lastDelivery": json.dumps(cursor.last_delivery),
        "inflight": json.dumps(_inflight_json(cursor.inflight)) if cursor.inflight else "",
        "replay": json.dumps(_replay_json(cursor.replay)) if cursor.replay else "",
    }
    optional = {
        "failingSince": cursor.failing_since,
        "nextAttemptAt": cursor.next_attempt_at,
        "leaseHolder": cursor.lease_holder,
        "leaseUntil": cursor.lease_until,
    }
    entity.update({name: value for name, value in optional.items() if value is not None})
    return entity


def _inflight_json(inflight: InFlight) -> dict[str, Any]:
    return {
        "id": inflight.id,
        "rows": list(inflight.rows),
        "start": inflight.start,
        "replay": inflight.replay,
    }


def _replay_json(replay: Replay) -> dict[str, Any]:
    return {
        "id": replay.id,
        "since": replay.since.isoformat(),
        "until": replay.until.isoformat(),
        "through": replay.through,
        "position": replay.position,
    }


def _from_entity(entity: Any) -> SinkCursor:
    inflight = json.loads(entity["inflight"]) if entity.get("inflight") else None
    replay = json.loads(entity["replay"]) if entity.get("replay") else None
    return SinkCursor(
        scope=entity["PartitionKey"],
        sink_id=entity["RowKey"],
        position=entity.get("position") or "",
        inflight=InFlight(inflight["id"], tuple(inflight["rows"]), inflight["start"], inflight["replay"])
        if inflight
        else None,
        attempts=int(entity.get("attempts") or 0),
        failing_since=entity.get("failingSince"),
        next_attempt_at=entity.get("nextAttemptAt"),
        lease_holder=entity.get("leaseHolder"),
        lease_until=entity.get("leaseUntil"),
        replay=Replay(
            replay["id"],
            datetime.fromisoformat(replay["since"]),
            datetime.fromisoformat(replay["until"]),
            replay["through"],
            replay["position"],
        )
        if replay
        else None,
        batches_delivered=int(entity.get("batchesDelivered") or 0),
        last_delivery=json.loads(entity.get("lastDelivery") or "{}"),
        etag=entity.metadata.get("etag") if hasattr(entity, "metadata") else None,
    )
