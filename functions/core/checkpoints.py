"""The `checkpoints` table: per scope, the cursor last read and when a sync last completed.

One entity per scope (a list, a Graph resource), in its source's partition, guarded by its ETag.
It also names where the source is read and the subscription, so the change sweep can visit every
scope due for a sync with one query and no other read, and keeps the scope's health for people:
its last notification and how many reads in a row have failed. The columns keep the names they
were born with (`listId`, `siteUrl`, `changeToken`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from .resources import CHECKPOINTS_TABLE
from .scopes import ReadTarget
from .storage import Storage, TableRepository, outages_reported

MAX_FAILURE_LENGTH = 1000


@dataclass(frozen=True)
class Checkpoint:
    """Where a scope's change feed was last read: its `cursor` (a SharePoint change token, a Graph
    delta link); `address` is where the source is read (a site URL, a Graph resource path)."""

    scope: str
    address: str
    subscription_id: str
    cursor: str
    last_synced: datetime
    etag: str
    source: str
    last_notification: datetime | None = None
    consecutive_failures: int = 0
    last_failure: str | None = None
    last_failed: datetime | None = None
    # SharePoint: the fields whose values the reader adds to each change row.
    fields: tuple[str, ...] = ()
    # Changes a read not started by a notification found unannounced past the source's delay.
    gap_count: int = 0
    last_gap_at: datetime | None = None
    longest_gap_seconds: float = 0.0

    @property
    def target(self) -> ReadTarget:
        return ReadTarget(self.scope, self.address, self.subscription_id)


class CheckpointConflict(Exception):
    """Someone else moved the checkpoint since we read it (ETag mismatch)."""


class CheckpointStore(TableRepository):
    table_name = CHECKPOINTS_TABLE

    def __init__(self, storage: Storage) -> None:
        super().__init__(storage)
        # Notifications a read is under way for, by (source, scope): the read's own checkpoint
        # write records them, instead of a write of their own after it.
        self._pending: dict[tuple[str, str], datetime] = {}
        self._pending_lock = threading.Lock()

    def note_notification(self, scope: str, at: datetime, source: str) -> None:
        """A notification received at `at` is being read: the next `replace` of the scope (the
        read's) records it; `flush_notification` records it if none did."""
        with self._pending_lock:
            known = self._pending.get((source, scope))
            self._pending[(source, scope)] = at if known is None else max(known, at)

    def flush_notification(self, scope: str, source: str) -> None:
        """Record a noted notification that no checkpoint write has recorded yet."""
        with self._pending_lock:
            at = self._pending.pop((source, scope), None)
        if at is not None:
            self.record_notification(scope, at, source)

    def read(self, scope: str, source: str) -> Checkpoint | None:

        with outages_reported(f"reading the checkpoint of {scope}"):
            try:
                entity = self._table.get_entity(source, scope)
            except ResourceNotFoundError:
                return None
        return _from_entity(entity)

    def start(
        self,
        scope: str,
        *,
        address: str,
        subscription_id: str,
        cursor: str,
        at: datetime,
        source: str,
        fields: tuple[str, ...] = (),
    ) -> None:
        """Set unconditionally: when a subscription starts, or a resync starts the list over."""

        entity = _entity(source, scope, address, subscription_id, cursor, at, fields)
        with outages_reported(f"setting the checkpoint of list {scope}"):
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def replace(self, checkpoint: Checkpoint, cursor: str, at: datetime) -> Checkpoint:
        """Write only if nobody moved it since `checkpoint` was read; raises CheckpointConflict."""

        entity = _entity(
            checkpoint.source,
            checkpoint.scope,
            checkpoint.address,
            checkpoint.subscription_id,
            cursor,
            at,
            checkpoint.fields,
        )
        # A completed read: the failure streak ends; the last notification (or a newer one this
        # read is for) and the notification gaps are carried over.
        with self._pending_lock:
            noted = self._pending.get((checkpoint.source, checkpoint.scope))
        last_notification = max(
            (t for t in (checkpoint.last_notification, noted) if t is not None), default=None
        )
        if last_notification is not None:
            entity["lastNotificationAt"] = last_notification
        if checkpoint.last_gap_at is not None:
            entity |= {
                "gapCount": checkpoint.gap_count,
                "lastGapAt": checkpoint.last_gap_at,
                "longestGapSeconds": checkpoint.longest_gap_seconds,
            }
        with outages_reported(f"advancing the checkpoint of list {checkpoint.scope}"):
            try:
                metadata = self._replace_if_unchanged(entity, checkpoint.etag)
            except ResourceModifiedError as error:
                raise CheckpointConflict(checkpoint.scope) from error
        if noted is not None:
            with self._pending_lock:
                if self._pending.get((checkpoint.source, checkpoint.scope)) == noted:
                    del self._pending[(checkpoint.source, checkpoint.scope)]
        return _from_entity(entity, etag=str(metadata["etag"]))

    def follow_subscription(self, scope: str, subscription_id: str, source: str) -> None:
        """A recreated subscription takes over the checkpoint where it stands."""

        with outages_reported(f"pointing the checkpoint of {scope} at {subscription_id}"):
            self._table.update_entity(
                {"PartitionKey": source, "RowKey": scope, "subscriptionId": subscription_id},
                mode=UpdateMode.MERGE,
            )

    def record_notification(self, scope: str, at: datetime, source: str) -> None:
        """When the newest notification for the list that the worker has read was received."""
        self._merge(scope, source, {"lastNotificationAt": at}, "recording a notification of")

    def record_failure(self, scope: str, reason: str, at: datetime, source: str) -> int:
        """One more failed read in a row; the next completed read (`replace`) clears the streak.
        Returns the streak. Not ETag-guarded: a count shown to people may be off by one under a
        race, the token never."""
        current = self.read(scope, source)
        if current is None:
            return 0
        fields = {
            "consecutiveFailures": current.consecutive_failures + 1,
            "lastFailure": reason[:MAX_FAILURE_LENGTH],
            "lastFailedAt": at,
        }
        self._merge(scope, source, fields, "recording a failed read of")
        return current.consecutive_failures + 1

    def record_gap(self, scope: str, length: timedelta, at: datetime, source: str) -> None:
        """Changes found that no notification announced, the oldest `length` ago. Not ETag-guarded,
        as `record_failure`: a count shown to people may be off by one under a race."""
        current = self.read(scope, source)
        if current is None:
            return
        fields = {
            "gapCount": current.gap_count + 1,
            "lastGapAt": at,
            "longestGapSeconds": max(current.longest_gap_seconds, length.total_seconds()),
        }
        self._merge(scope, source, fields, "recording a notification gap of")

    def _merge(self, scope: str, source: str, fields: dict[str, Any], doing: str) -> None:

        with outages_reported(f"{doing} {scope}"):
            try:
                entity = {"PartitionKey": source, "RowKey": scope, **fields}
                self._table.update_entity(entity, mode=UpdateMode.MERGE)
            except ResourceNotFoundError:
                pass  # the subscription was deleted meanwhile: nothing to keep health for

    def not_synced_since(self, moment: datetime) -> list[Checkpoint]:
        """Every source's resources whose last completed sync is older than `moment` (filtered in
        the table service; one partition per source)."""
        with outages_reported("reading checkpoints due for a sync"):
            entities = self._table.query_entities("lastSyncedAt lt @moment", parameters={"moment": moment})
            return [_from_entity(entity) for entity in entities]

    def delete(self, scope: str, source: str) -> None:
        with outages_reported(f"deleting the checkpoint of {scope}"):
            self._table.delete_entity(source, scope)


def _entity(
    source: str,
    scope: str,
    address: str,
    subscription_id: str,
    cursor: str,
    at: datetime,
    fields: tuple[str, ...],
) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": source,
        "RowKey": scope,
        "siteUrl": address,
        "subscriptionId": subscription_id,
        "changeToken": cursor,
        "lastSyncedAt": at,
    }
    if fields:
        entity["fields"] = json.dumps(list(fields))
    return entity


def _from_entity(entity: Any, etag: str | None = None) -> Checkpoint:
    return Checkpoint(
        scope=entity["RowKey"],
        address=entity["siteUrl"],
        subscription_id=entity["subscriptionId"],
        cursor=entity["changeToken"],
        last_synced=entity["lastSyncedAt"],
        etag=etag or str(entity.metadata["etag"]),
        source=entity["PartitionKey"],
        last_notification=entity.get("lastNotificationAt"),
        consecutive_failures=int(entity.get("consecutiveFailures", 0)),
        last_failure=entity.get("lastFailure"),
        last_failed=entity.get("lastFailedAt"),
        fields=tuple(json.loads(entity["fields"])) if entity.get("fields") else (),
        gap_count=int(entity.get("gapCount", 0)),
        last_gap_at=entity.get("lastGapAt"),
        longest_gap_seconds=float(entity.get("longestGapSeconds", 0.0)),
    )
