"""The `itemfields` table: per item, the last values read of the fields its list's subscription
follows, so that the next change of the item can say what they were before.

One entity holds the entries of up to 25 consecutive item ids of one list (PartitionKey: the list,
RowKey: the bucket), as JSON split over properties of at most 30,000 characters: a page of 1,000
changes reads and writes about forty entities, not a thousand. Values are cut at 255 characters,
so a bucket of 25 items with 20 fields, each with its values and those before, stays within an
entity's 1 MiB (stored as UTF-16). Each
bucket is written under the ETag it was read with: a reader whose read lease was taken over
re-reads and merges, never overwrites what the other wrote.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from ...resources import ITEM_FIELDS_TABLE
from ...storage import TableRepository, outages_reported

ITEMS_PER_BUCKET = 25
MAX_VALUE_CHARS = 255
PROPERTY_CHARS = 30_000
MAX_WRITE_ATTEMPTS = 5

FieldValues = dict[str, Any]


def bounded(values: Mapping[str, Any]) -> FieldValues:
    """The values as stored and logged: text longer than MAX_VALUE_CHARS cut, with an ellipsis."""
    return {name: _bounded(value) for name, value in values.items()}


def _bounded(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + "…"
    return value


def _bucket(item_id: int) -> str:
    return f"{item_id // ITEMS_PER_BUCKET:08d}"


@dataclass
class Bucket:
    values: dict[int, FieldValues] = field(default_factory=dict)
    etag: str | None = None  # None: not stored yet


def _bucket_of(entity: Any) -> Bucket:
    parts = sorted(name for name in entity if name.startswith("v") and name[1:].isdigit())
    text = "".join(entity[name] for name in parts)
    stored = json.loads(text) if text else {}
    values = {int(item_id): item_values for item_id, item_values in stored.items()}
    return Bucket(values, str(entity.metadata["etag"]))


class FieldValueStore(TableRepository):
    table_name = ITEM_FIELDS_TABLE

    def read(self, scope: str, item_ids: Iterable[int]) -> dict[str, Bucket]:
        """The buckets holding those items, by RowKey (empty ones for buckets not stored yet): one
        range query over the list's partition, not a read per bucket."""
        keys = sorted({_bucket(i) for i in item_ids})
        if not keys:
            return {}
        found = {key: Bucket() for key in keys}
        with outages_reported(f"reading field values of {scope}"):
            entities = self._table.query_entities(
                "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                parameters={"pk": scope, "low": keys[0], "high": keys[-1]},
            )
            for entity in entities:
                if entity["RowKey"] in found:
                    found[entity["RowKey"]] = _bucket_of(entity)
        return found

    def write(self, scope: str, values: Mapping[int, FieldValues], buckets: dict[str, Bucket]) -> None:
        """Store the items' values into the buckets read before (re-read and merged on conflict)."""
        by_bucket: dict[str, dict[int, FieldValues]] = defaultdict(dict)
        for item_id, item_values in values.items():
            by_bucket[_bucket(item_id)][item_id] = item_values
        for key, new in by_bucket.items():
            bucket = buckets.get(key) or self._read_bucket(scope, key)
            for _ in range(MAX_WRITE_ATTEMPTS):
                if self._write_bucket(scope, key, {**bucket.values, **new}, bucket.etag):
                    break
                bucket = self._read_bucket(scope, key)
            else:
                raise RuntimeError(f"the field values of {scope} bucket {key} kept changing under us")

    def _read_bucket(self, scope: str, key: str) -> Bucket:
        with outages_reported(f"reading field values of {scope}"):
            try:
                entity = self._table.get_entity(scope, key)
            except ResourceNotFoundError:
                return Bucket()
        return _bucket_of(entity)

    def _write_bucket(self, scope: str, key: str, values: dict[int, FieldValues], etag: str | None) -> bool:
        """False when another writer came first."""
        text = json.dumps(
            {str(item_id): item_values for item_id, item_values in sorted(values.items())}, ensure_ascii=False
        )
        starts = range(0, len(text), PROPERTY_CHARS)
        chunks = {f"v{n:03d}": text[start : start + PROPERTY_CHARS] for n, start in enumerate(starts)}
        entity = {"PartitionKey": scope, "RowKey": key, **chunks}
        with outages_reported(f"writing field values of {scope}"):
            try:
                if etag is None:
                    self._table.create_entity(entity)
                else:
                    self._replace_if_unchanged(entity, etag)
            except (ResourceExistsError, ResourceModifiedError):
                return False
        return True
