"""The `itemfields` table: per item, the last values read of the fields its list's subscription
follows, so that the next change of the item can say what they were before.

A partition holds up to 1,000 consecutive item ids of one list: the values a page of changes
needs come in a few range reads, never one read per item. Only the list's reader writes them,
under the list's read lease, so last write wins is right.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from azure.data.tables import TransactionOperation, UpdateMode

from ...resources import ITEM_FIELDS_TABLE
from ...storage import TableRepository, outages_reported

ITEMS_PER_PARTITION = 1000
MAX_TRANSACTION_SIZE = 100
# A table property holds 32K characters; 20 fields of this many stay well under it.
MAX_VALUE_CHARS = 1000

FieldValues = dict[str, Any]


def bounded(values: Mapping[str, Any]) -> FieldValues:
    """The values as stored and logged: long text cut at MAX_VALUE_CHARS, marked with an ellipsis."""
    return {
        name: value[:MAX_VALUE_CHARS] + "…"
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS
        else value
        for name, value in values.items()
    }


def _partition(scope: str, item_id: int) -> str:
    return f"{scope}-{item_id // ITEMS_PER_PARTITION:07d}"


def _row(item_id: int) -> str:
    return f"{item_id:010d}"


class FieldValueStore(TableRepository):
    table_name = ITEM_FIELDS_TABLE

    def read(self, scope: str, item_ids: Iterable[int]) -> dict[int, FieldValues]:
        """The stored values of those items that have any."""
        by_partition: dict[str, list[int]] = defaultdict(list)
        for item_id in set(item_ids):
            by_partition[_partition(scope, item_id)].append(item_id)
        found: dict[int, FieldValues] = {}
        for partition, ids in by_partition.items():
            with outages_reported(f"reading the field values of {len(ids)} item(s) of {scope}"):
                entities = self._table.query_entities(
                    "PartitionKey eq @pk and RowKey ge @low and RowKey le @high",
                    parameters={"pk": partition, "low": _row(min(ids)), "high": _row(max(ids))},
                )
                wanted = {_row(item_id) for item_id in ids}
                for entity in entities:
                    if entity["RowKey"] in wanted:
                        found[int(entity["RowKey"])] = json.loads(entity["values"])
        return found

    def write(self, scope: str, values: Mapping[int, FieldValues]) -> None:
        by_partition: dict[str, list[int]] = defaultdict(list)
        for item_id in values:
            by_partition[_partition(scope, item_id)].append(item_id)
        for partition, ids in by_partition.items():
            for start in range(0, len(ids), MAX_TRANSACTION_SIZE):
                chunk = ids[start : start + MAX_TRANSACTION_SIZE]
                with outages_reported(f"writing the field values of {len(chunk)} item(s) of {scope}"):
                    self._table.submit_transaction(
                        [
                            (
                                TransactionOperation.UPSERT,
                                {
                                    "PartitionKey": partition,
                                    "RowKey": _row(i),
                                    "values": json.dumps(values[i]),
                                },
                                {"mode": UpdateMode.REPLACE},
                            )
                            for i in chunk
                        ]
                    )
