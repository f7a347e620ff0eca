"""The `sinks` table: one entity per sink, partitioned by the scope it follows.

Nothing in it is a credential in the clear: the signing secrets and the URL's query string (a
workflow's `sig=`) are sealed (sealing.py), each bound to its sink and column. Every write after
the first is conditional on the ETag read, so a delete or a rotation is never undone by a writer
that read the record before it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from ..errors import Conflict
from ..resources import SINKS_TABLE
from ..settings import SettingsError
from ..storage import Storage, TableRepository, is_valid_key, outages_reported
from .record import AUTH_NONE, Sink, SinkState
from .sealing import SEALING_KEYS, KeyRing


class SinkChanged(Conflict):
    """The sink was changed or removed by another request since it was read."""

    def public_message(self) -> str:
        return f"sink {self} was changed by another request; retry"


class SinkStore(TableRepository):
    table_name = SINKS_TABLE

    def __init__(self, storage: Storage, keys: KeyRing | None) -> None:
        super().__init__(storage)
        self._keys = keys

    def create(self, sink: Sink) -> Sink:
        with outages_reported(f"saving sink {sink.id}"):
            metadata = self._table.create_entity(self._entity(sink))
        return replace(sink, etag=metadata.get("etag"))

    def replace(self, sink: Sink) -> Sink:
        """Write the sink if nobody changed it since `sink.etag` was read; raises SinkChanged."""

        with outages_reported(f"saving sink {sink.id}"):
            try:
                metadata = self._replace_if_unchanged(self._entity(sink), sink.etag or "")
            except (ResourceModifiedError, ResourceNotFoundError):
                raise SinkChanged(sink.id) from None
        return replace(sink, etag=metadata.get("etag"))

    def get(self, scope: str, sink_id: str) -> Sink | None:

        if not (is_valid_key(scope) and is_valid_key(sink_id)):
            return None
        with outages_reported(f"reading sink {sink_id}"):
            try:
                return self._from_entity(self._table.get_entity(scope, sink_id))
            except ResourceNotFoundError:
                return None

    def of_scope(self, scope: str) -> list[Sink]:
        with outages_reported(f"reading the sinks of {scope}"):
            entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": scope})
            return [self._from_entity(entity) for entity in entities]

    def all(self) -> list[Sink]:
        with outages_reported("reading every sink"):
            return [self._from_entity(entity) for entity in self._table.list_entities()]

    def delete(self, sink: Sink) -> None:
        """Delete the sink as read; raises SinkChanged if it changed (or went) since."""

        with outages_reported(f"deleting sink {sink.id}"):
            try:
                self._table.delete_entity(
                    sink.scope, sink.id, etag=sink.etag, match_condition=MatchConditions.IfNotModified
                )
            except ResourceModifiedError:
                raise SinkChanged(sink.id) from None
            except ResourceNotFoundError:
                pass

    def _reseal(self, entity: Any) -> Sink:
        """A sink stored before secrets were sealed (plaintext `url`, `secret`, `previousSecret`):
        written again, sealed, the first time it is read."""
        sink = Sink(
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
            etag=entity.metadata.get("etag"),
        )
        try:
            return self.replace(sink)
        except SinkChanged:
            return sink  # another reader sealed it first

    @property
    def _ring(self) -> KeyRing:
        if self._keys is None:
            raise SettingsError(f"{SEALING_KEYS} is not set: sinks keep their secrets sealed under it")
        return self._keys

    def _seal(self, sink: Sink, column: str, value: str | None) -> str | None:
        return None if value is None else self._ring.seal(value, bound_to=f"{sink.scope}/{sink.id}/{column}")

    def _open(self, entity: Any, column: str) -> str | None:
        sealed = entity.get(column)
        if not sealed:
            return None
        return self._ring.open(sealed, bound_to=f"{entity['PartitionKey']}/{entity['RowKey']}/{column}")

    def _entity(self, sink: Sink) -> dict[str, Any]:
        parts = urlsplit(sink.url)
        entity: dict[str, Any] = {
            "PartitionKey": sink.scope,
            "RowKey": sink.id,
            "subscriptionId": sink.subscription_id,
            "type": sink.type,
            # The URL without its query: the query is where workflows and many webhooks keep
            # their signature or token, so it is sealed below.
            "urlBase": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            "changeTypes": json.dumps(list(sink.change_types)),
            "ignoreChangesBy": json.dumps(list(sink.ignore_changes_by)),
            "createdDateTime": sink.created,
            "state": sink.state.value,
            "auth": sink.auth,
            "keyId": self._ring.current_id,
        }
        optional = {
            "urlQuerySealed": self._seal(sink, "urlQuerySealed", parts.query or None),
            "secretSealed": self._seal(sink, "secretSealed", sink.secret),
            "previousSecretSealed": self._seal(sink, "previousSecretSealed", sink.previous_secret),
            "previousSecretUntil": sink.previous_secret_until,
            "disabledReason": sink.disabled_reason,
            "disabledAt": sink.disabled_at,
        }
        entity.update({name: value for name, value in optional.items() if value is not None})
        return entity

    def _from_entity(self, entity: Any) -> Sink:
        if "urlBase" not in entity:
            return self._reseal(entity)
        query = self._open(entity, "urlQuerySealed")
        return Sink(
            id=entity["RowKey"],
            scope=entity["PartitionKey"],
            subscription_id=entity["subscriptionId"],
            type=entity["type"],
            url=entity["urlBase"] + (f"?{query}" if query else ""),
            change_types=tuple(json.loads(entity["changeTypes"])),
            ignore_changes_by=tuple(json.loads(entity.get("ignoreChangesBy") or "[]")),
            created=entity["createdDateTime"],
            secret=self._open(entity, "secretSealed"),
            previous_secret=self._open(entity, "previousSecretSealed"),
            previous_secret_until=entity.get("previousSecretUntil"),
            state=SinkState(entity["state"]),
            disabled_reason=entity.get("disabledReason"),
            disabled_at=entity.get("disabledAt"),
            auth=entity.get("auth") or AUTH_NONE,
            etag=entity.metadata.get("etag"),
        )
