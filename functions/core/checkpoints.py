"""The `checkpoints` table: per list, the last change token read and when a sync last completed.

One entity per list, guarded by its ETag. It also names the list's site and subscription, so the
change sweep can visit every list due for a sync with one query and no other read, and keeps the
list's health for people: its last notification and how many reads in a row have failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .change_tokens import parse_change_token
from .storage import CHECKPOINTS_TABLE, SHAREPOINT_PARTITION, TableRepository, outages_reported

MAX_FAILURE_LENGTH = 1000


@dataclass(frozen=True)
class Checkpoint:
    """Where a resource's change feed was last read: a SharePoint change token, or a Graph
    delta link. `list_id` is the subscription record's scope; `site_url` the SharePoint site, or
    the Graph resource."""

    list_id: str
    site_url: str
    subscription_id: str
    change_token: str
    last_synced: datetime
    etag: str
    source: str = SHAREPOINT_PARTITION
    last_notification: datetime | None = None
    consecutive_failures: int = 0
    last_failure: str | None = None
    last_failed: datetime | None = None


class CheckpointConflict(Exception):
    """Someone else moved the checkpoint since we read it (ETag mismatch)."""


class CheckpointStore(TableRepository):
    table_name = CHECKPOINTS_TABLE

    def read(self, list_id: str, source: str = SHAREPOINT_PARTITION) -> Checkpoint | None:
        from azure.core.exceptions import ResourceNotFoundError

        with outages_reported(f"reading the checkpoint of {list_id}"):
            try:
                entity = self._table.get_entity(source, list_id)
            except ResourceNotFoundError:
                return None
        return _from_entity(entity)

    def start(
        self,
        list_id: str,
        *,
        site_url: str,
        subscription_id: str,
        change_token: str,
        at: datetime,
        source: str = SHAREPOINT_PARTITION,
    ) -> None:
        """Set unconditionally: when a subscription starts, or a resync starts the list over."""
        from azure.data.tables import UpdateMode

        entity = _entity(source, list_id, site_url, subscription_id, change_token, at)
        with outages_reported(f"setting the checkpoint of list {list_id}"):
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def replace(self, checkpoint: Checkpoint, change_token: str, at: datetime) -> Checkpoint:
        """Write only if nobody moved it since `checkpoint` was read; raises CheckpointConflict."""
        from azure.core.exceptions import ResourceModifiedError

        entity = _entity(
            checkpoint.source,
            checkpoint.list_id,
            checkpoint.site_url,
            checkpoint.subscription_id,
            change_token,
            at,
        )
        # A completed read: the failure streak ends; the last notification is carried over.
        if checkpoint.last_notification is not None:
            entity["lastNotificationAt"] = checkpoint.last_notification
        with outages_reported(f"advancing the checkpoint of list {checkpoint.list_id}"):
            try:
                metadata = self._replace_if_unchanged(entity, checkpoint.etag)
            except ResourceModifiedError as error:
                raise CheckpointConflict(checkpoint.list_id) from error
        return _from_entity(entity, etag=str(metadata["etag"]))

    def follow_subscription(
        self, list_id: str, subscription_id: str, source: str = SHAREPOINT_PARTITION
    ) -> None:
        """A recreated subscription takes over the checkpoint where it stands."""
        from azure.data.tables import UpdateMode

        with outages_reported(f"pointing the checkpoint of {list_id} at {subscription_id}"):
            self._table.update_entity(
                {"PartitionKey": source, "RowKey": list_id, "subscriptionId": subscription_id},
                mode=UpdateMode.MERGE,
            )

    def record_notification(self, list_id: str, at: datetime, source: str = SHAREPOINT_PARTITION) -> None:
        """When the newest notification for the list that the worker has read was received."""
        self._merge(list_id, source, {"lastNotificationAt": at}, "recording a notification of")

    def record_failure(
        self, list_id: str, reason: str, at: datetime, source: str = SHAREPOINT_PARTITION
    ) -> None:
        """One more failed read in a row; the next completed read (`replace`) clears the streak.
        Not ETag-guarded: a count shown to people may be off by one under a race, the token never."""
        current = self.read(list_id, source)
        if current is None:
            return
        fields = {
            "consecutiveFailures": current.consecutive_failures + 1,
            "lastFailure": reason[:MAX_FAILURE_LENGTH],
            "lastFailedAt": at,
        }
        self._merge(list_id, source, fields, "recording a failed read of")

    def _merge(self, list_id: str, source: str, fields: dict[str, Any], doing: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.data.tables import UpdateMode

        with outages_reported(f"{doing} {list_id}"):
            try:
                entity = {"PartitionKey": source, "RowKey": list_id, **fields}
                self._table.update_entity(entity, mode=UpdateMode.MERGE)
            except ResourceNotFoundError:
                pass  # the subscription was deleted meanwhile: nothing to keep health for

    def not_synced_since(self, moment: datetime) -> list[Checkpoint]:
        """Every source's resources whose last completed sync is older than `moment` (filtered in
        the table service; one partition per source)."""
        with outages_reported("reading checkpoints due for a sync"):
            entities = self._table.query_entities("lastSyncedAt lt @moment", parameters={"moment": moment})
            return [_from_entity(entity) for entity in entities]

    def delete(self, list_id: str, source: str = SHAREPOINT_PARTITION) -> None:
        with outages_reported(f"deleting the checkpoint of {list_id}"):
            self._table.delete_entity(source, list_id)


def _entity(
    source: str, list_id: str, site_url: str, subscription_id: str, change_token: str, at: datetime
) -> dict[str, Any]:
    return {
        "PartitionKey": source,
        "RowKey": list_id,
        "siteUrl": site_url,
        "subscriptionId": subscription_id,
        "changeToken": change_token,
        "lastSyncedAt": at,
    }


def _from_entity(entity: Any, etag: str | None = None) -> Checkpoint:
    return Checkpoint(
        list_id=entity["RowKey"],
        site_url=entity["siteUrl"],
        subscription_id=entity["subscriptionId"],
        change_token=entity["changeToken"],
        last_synced=entity["lastSyncedAt"],
        etag=etag or str(entity.metadata["etag"]),
        source=entity["PartitionKey"],
        last_notification=entity.get("lastNotificationAt"),
        consecutive_failures=int(entity.get("consecutiveFailures", 0)),
        last_failure=entity.get("lastFailure"),
        last_failed=entity.get("lastFailedAt"),
    )


class CheckpointReaderWriter(Protocol):
    def read(self, list_id: str) -> Checkpoint | None: ...

    def replace(self, checkpoint: Checkpoint, change_token: str, at: datetime) -> Checkpoint: ...


def commit_sync(
    checkpoints: CheckpointReaderWriter, checkpoint: Checkpoint, change_token: str, at: datetime
) -> tuple[Checkpoint, bool]:
    """Record that the list has been read up to `change_token` at `at`; the token never moves
    backwards.

    Returns the checkpoint as stored now, and whether this call moved its token (False when
    another worker had already moved it at least as far).
    """
    target = parse_change_token(change_token)
    while True:
        moved = target > parse_change_token(checkpoint.change_token)
        try:
            token = change_token if moved else checkpoint.change_token
            return checkpoints.replace(checkpoint, token, max(at, checkpoint.last_synced)), moved
        except CheckpointConflict:
            current = checkpoints.read(checkpoint.list_id)
            if current is None:
                raise
            checkpoint = current
