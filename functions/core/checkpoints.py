"""The `checkpoints` table: the last change token read per list, guarded by its ETag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .change_tokens import parse_change_token
from .storage import CHECKPOINTS_TABLE, SHAREPOINT_PARTITION, TableRepository, outages_reported


@dataclass(frozen=True)
class Checkpoint:
    list_id: str
    change_token: str
    etag: str


class CheckpointConflict(Exception):
    """Someone else moved the checkpoint since we read it (ETag mismatch)."""


class CheckpointStore(TableRepository):
    table_name = CHECKPOINTS_TABLE

    def read(self, list_id: str) -> Checkpoint | None:
        from azure.core.exceptions import ResourceNotFoundError

        with outages_reported(f"reading the checkpoint of list {list_id}"):
            try:
                entity = self._table.get_entity(SHAREPOINT_PARTITION, list_id)
            except ResourceNotFoundError:
                return None
        return Checkpoint(list_id, entity["changeToken"], str(entity.metadata["etag"]))

    def reset(self, list_id: str, change_token: str) -> None:
        """Set unconditionally: only when a subscription starts, or the token expired."""
        from azure.data.tables import UpdateMode

        with outages_reported(f"setting the checkpoint of list {list_id}"):
            self._table.upsert_entity(_entity(list_id, change_token), mode=UpdateMode.REPLACE)

    def advance(self, checkpoint: Checkpoint, change_token: str) -> Checkpoint:
        """Replace only if nobody moved it since `checkpoint` was read; raises CheckpointConflict."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError
        from azure.data.tables import UpdateMode

        with outages_reported(f"advancing the checkpoint of list {checkpoint.list_id}"):
            try:
                metadata = self._table.update_entity(
                    _entity(checkpoint.list_id, change_token),
                    mode=UpdateMode.REPLACE,
                    etag=checkpoint.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError as error:
                raise CheckpointConflict(checkpoint.list_id) from error
        return Checkpoint(checkpoint.list_id, change_token, str(metadata["etag"]))

    def delete(self, list_id: str) -> None:
        with outages_reported(f"deleting the checkpoint of list {list_id}"):
            self._table.delete_entity(SHAREPOINT_PARTITION, list_id)


def _entity(list_id: str, change_token: str) -> dict[str, Any]:
    return {"PartitionKey": SHAREPOINT_PARTITION, "RowKey": list_id, "changeToken": change_token}


class CheckpointReaderWriter(Protocol):
    def read(self, list_id: str) -> Checkpoint | None: ...

    def advance(self, checkpoint: Checkpoint, change_token: str) -> Checkpoint: ...


def advance_checkpoint(
    checkpoints: CheckpointReaderWriter, checkpoint: Checkpoint, change_token: str
) -> tuple[Checkpoint, bool]:
    """Move the checkpoint to `change_token`, never backwards.

    Returns the checkpoint as stored now, and whether it is ours (False when another worker had
    already moved it at least as far).
    """
    target = parse_change_token(change_token)
    while True:
        if parse_change_token(checkpoint.change_token) >= target:
            return checkpoint, False
        try:
            return checkpoints.advance(checkpoint, change_token), True
        except CheckpointConflict:
            current = checkpoints.read(checkpoint.list_id)
            if current is None:
                raise
            checkpoint = current
