"""The `sinks` table (one entity per sink, partitioned by the scope it follows) and the
`sinkbatches` table (every batch handed to a sink, with its outcome: what redelivery re-sends)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..storage import SINK_BATCHES_TABLE, SINKS_TABLE, TableRepository, is_valid_key, outages_reported
from .record import Sink, SinkState


class SinkStore(TableRepository):
    table_name = SINKS_TABLE

    def save(self, sink: Sink) -> None:
        from azure.data.tables import UpdateMode

        with outages_reported(f"saving sink {sink.id}"):
            self._table.upsert_entity(_entity(sink), mode=UpdateMode.REPLACE)

    def get(self, scope: str, sink_id: str) -> Sink | None:
        from azure.core.exceptions import ResourceNotFoundError

        if not (is_valid_key(scope) and is_valid_key(sink_id)):
            return None
        with outages_reported(f"reading sink {sink_id}"):
            try:
                return _from_entity(self._table.get_entity(scope, sink_id))
            except ResourceNotFoundError:
                return None

    def of_scope(self, scope: str) -> list[Sink]:
        with outages_reported(f"reading the sinks of {scope}"):
            entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": scope})
            return [_from_entity(entity) for entity in entities]

    def delete(self, sink: Sink) -> None:
        with outages_reported(f"deleting sink {sink.id}"):
            self._table.delete_entity(sink.scope, sink.id)


def _entity(sink: Sink) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": sink.scope,
        "RowKey": sink.id,
        "subscriptionId": sink.subscription_id,
        "type": sink.type,
        "url": sink.url,
        "changeTypes": json.dumps(list(sink.change_types)),
        "createdDateTime": sink.created,
        "state": sink.state.value,
        "lastDelivery": json.dumps(sink.last_delivery),
    }
    optional = {
        "secret": sink.secret,
        "previousSecret": sink.previous_secret,
        "previousSecretUntil": sink.previous_secret_until,
        "disabledReason": sink.disabled_reason,
    }
    entity.update({name: value for name, value in optional.items() if value is not None})
    return entity


def _from_entity(entity: Any) -> Sink:
    return Sink(
        id=entity["RowKey"],
        scope=entity["PartitionKey"],
        subscription_id=entity["subscriptionId"],
        type=entity["type"],
        url=entity["url"],
        change_types=tuple(json.loads(entity["changeTypes"])),
        created=entity["createdDateTime"],
        secret=entity.get("secret"),
        previous_secret=entity.get("previousSecret"),
        previous_secret_until=entity.get("previousSecretUntil"),
        state=SinkState(entity["state"]),
        disabled_reason=entity.get("disabledReason"),
        last_delivery=json.loads(entity.get("lastDelivery") or "{}"),
    )


# Row keys per batch: small enough for a queue message and a table property, large enough that a
# sync of 1,000 changes makes five batches.
MAX_BATCH_ROWS = 200


@dataclass(frozen=True)
class Batch:
    """Rows of a scope's change log, by key, for one sink. Its id is stable: the same rows for
    the same sink are the same batch on every attempt and every redelivery."""

    id: str
    sink_id: str
    scope: str
    rows: tuple[str, ...]
    status: str = "pending"  # pending, delivered, failed
    attempts: int = 0
    last_error: str | None = None

    @classmethod
    def of(cls, sink_id: str, scope: str, rows: tuple[str, ...]) -> Batch:
        digest = hashlib.sha256("|".join((sink_id, scope, *rows)).encode()).hexdigest()[:32]
        return cls(f"batch_{digest}", sink_id, scope, rows)

    def to_message(self, attempt: int) -> str:
        return json.dumps(
            {
                "batchId": self.id,
                "sinkId": self.sink_id,
                "scope": self.scope,
                "rows": list(self.rows),
                "attempt": attempt,
            }
        )

    @classmethod
    def from_message(cls, body: str) -> tuple[Batch, int]:
        data = json.loads(body)
        batch = cls(data["batchId"], data["sinkId"], data["scope"], tuple(data["rows"]))
        return batch, int(data.get("attempt", 1))


class BatchStore(TableRepository):
    table_name = SINK_BATCHES_TABLE

    def record(self, batch: Batch, at: datetime) -> None:
        from azure.data.tables import UpdateMode

        entity = {
            "PartitionKey": batch.sink_id,
            "RowKey": batch.id,
            "scope": batch.scope,
            "rows": json.dumps(list(batch.rows)),
            "status": batch.status,
            "attempts": batch.attempts,
            "lastError": batch.last_error or "",
            "updatedAt": at,
        }
        with outages_reported(f"recording batch {batch.id} of sink {batch.sink_id}"):
            self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def failed(self, sink_id: str) -> list[Batch]:
        with outages_reported(f"reading the failed batches of sink {sink_id}"):
            entities = self._table.query_entities(
                "PartitionKey eq @pk and status eq 'failed'", parameters={"pk": sink_id}
            )
            return [
                Batch(e["RowKey"], sink_id, e["scope"], tuple(json.loads(e["rows"])), e["status"],
                      int(e["attempts"]), e["lastError"] or None)
                for e in entities
            ]  # fmt: skip

    def mark(self, batch: Batch, status: str, attempts: int, error: str | None, at: datetime) -> Batch:
        updated = replace(batch, status=status, attempts=attempts, last_error=error)
        self.record(updated, at)
        return updated
