"""The `changes` table: every change read, one partition per scope, RowKeys in change order, and
the page of it the API shows.

Writes are upserts in entity-group transactions, so replaying a page writes no duplicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import TransactionOperation, UpdateMode

from .models import ChangeView, format_utc
from .resources import CHANGES_TABLE
from .storage import StorageUnavailable, TableRepository, outages_reported, purge_partition
from .table_read import TableReader, TableReadFailed
from .table_write import TableBatchWriter, TableWriteFailed

# Entity-group transactions take at most 100 operations, all in one partition.
MAX_TRANSACTION_SIZE = 100
# A table query answers at most this many entities a page.
MAX_QUERY_PAGE = 1000
# The API's pages of changes.
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class ChangePage:
    changes: list[ChangeView]
    next_after: str | None


@dataclass(frozen=True)
class SyncResult:
    """What one read of a list or resource wrote to the change log."""

    written: int
    resynced: bool = False
    # The change-log rows this sync wrote: what the sinks are sent.
    rows: tuple[str, ...] = ()
    # When the oldest change it read was made (how long a change can have gone unannounced).
    oldest_change: datetime | None = None

    @classmethod
    def combined(cls, results: Sequence[SyncResult]) -> SyncResult:
        times = [result.oldest_change for result in results if result.oldest_change is not None]
        return cls(
            written=sum(result.written for result in results),
            resynced=any(result.resynced for result in results),
            rows=tuple(row for result in results for row in result.rows),
            oldest_change=min(times) if times else None,
        )


class ChangeLog(TableRepository):
    table_name = CHANGES_TABLE

    def append(self, scope: str, entities: Sequence[dict[str, Any]]) -> list[str]:
        """Upsert the rows; returns their keys."""

        writer = self._storage.table_writer(CHANGES_TABLE)
        for start in range(0, len(entities), MAX_TRANSACTION_SIZE):
            chunk = entities[start : start + MAX_TRANSACTION_SIZE]
            if writer is not None:
                _write(writer, scope, chunk)
                continue
            with outages_reported(f"writing {len(chunk)} change(s) of {scope}"):
                self._table.submit_transaction(
                    [
                        (
                            TransactionOperation.UPSERT,
                            {**entity, "PartitionKey": scope},
                            {"mode": UpdateMode.REPLACE},
                        )
                        for entity in chunk
                    ]
                )
        return [entity["RowKey"] for entity in entities]

    def page(self, scope: str, *, after: str, top: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `top` changes after RowKey `after`, and whether more follow."""
        rows: list[dict[str, Any]] = []
        with outages_reported(f"reading changes of {scope}"):
            entities = self._table.query_entities(
                "PartitionKey eq @pk and RowKey gt @after",
                parameters={"pk": scope, "after": after},
                results_per_page=top + 1,
            )
            for entity in entities:
                rows.append(entity)
                if len(rows) > top:
                    break
        return rows[:top], len(rows) > top

    def view_page(self, scope: str, *, after: str = "", top: int = DEFAULT_PAGE_SIZE) -> ChangePage:
        """The API's page of the scope's changes after the change id `after`. The log is kept per
        scope, so a subscription that was recreated keeps its history."""
        rows, more = self.page(scope, after=after, top=top)
        changes = [row_to_view(row) for row in rows]
        return ChangePage(changes, changes[-1].id if more and changes else None)

    def following(self, scope: str, *, after: str, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` rows after RowKey `after`, in key order, fetched in pages of exactly that
        many (a table query answers at most 1,000 a page): over REST as plain JSON where the
        account allows it (functions/core/table_read.py), else through the SDK."""
        reader = self._storage.table_reader(self.table_name)
        if reader is not None:
            return _following(reader, scope, after, limit)
        rows: list[dict[str, Any]] = []
        with outages_reported(f"reading changes of {scope}"):
            entities = self._table.query_entities(
                "PartitionKey eq @pk and RowKey gt @after",
                parameters={"pk": scope, "after": after},
                results_per_page=min(limit, MAX_QUERY_PAGE),
            )
            for entity in entities:
                rows.append(entity)
                if len(rows) == limit:
                    break
        return rows

    def rows(self, scope: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The rows with these keys, in key order, with one range query."""
        if not keys:
            return []
        wanted = set(keys)
        with outages_reported(f"reading {len(keys)} change(s) of {scope}"):
            entities = self._table.query_entities(
                "PartitionKey eq @pk and RowKey ge @first and RowKey le @last",
                parameters={"pk": scope, "first": min(keys), "last": max(keys)},
            )
            return [entity for entity in entities if entity["RowKey"] in wanted]

    def last_key(self, scope: str) -> str:
        """The greatest RowKey of the scope's log ("" when it is empty): where a new sink starts.
        Reads keys only, a thousand a page."""
        last = ""
        with outages_reported(f"finding the end of the change log of {scope}"):
            entities = self._table.query_entities(
                "PartitionKey eq @pk", parameters={"pk": scope}, select=["RowKey"], results_per_page=1000
            )
            for entity in entities:
                last = max(last, entity["RowKey"])
        return last

    def purge(self, scope: str) -> int:
        """Delete every row of a scope (its tenant was removed); returns how many."""
        return purge_partition(self._table, scope)

    def count_between(self, scope: str, since: datetime, until: datetime, *, through: str) -> int:
        """How many rows up to RowKey `through` carry a change time in [since, until]."""
        with outages_reported(f"counting changes of {scope}"):
            entities = self._table.query_entities(
                "PartitionKey eq @pk and RowKey le @through",
                parameters={"pk": scope, "through": through},
                select=["RowKey", "time"],
                results_per_page=1000,
            )
            return sum(1 for entity in entities if since <= as_utc(entity["time"]) <= until)


def as_utc(value: Any) -> datetime:
    """A row's `time`, stored as a table datetime or (older rows) as ISO text."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def row_to_view(row: dict[str, Any]) -> ChangeView:
    return ChangeView.model_validate({**row, "id": row["RowKey"], "time": _time(row["time"])})


def _following(reader: TableReader, scope: str, after: str, limit: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    query = f"PartitionKey eq {_literal(scope)} and RowKey gt {_literal(after)}"
    try:
        for row in reader.query(query, top=min(limit, MAX_QUERY_PAGE)):
            if isinstance(row.get("time"), str):  # JSON carries the time as text; rows keep a datetime
                row["time"] = datetime.fromisoformat(row["time"].replace("Z", "+00:00"))
            rows.append(row)
            if len(rows) == limit:
                break
    except TableReadFailed as error:
        if error.is_outage:
            raise StorageUnavailable(f"reading changes of {scope}: {error}") from error
        raise
    return rows


def _write(writer: TableBatchWriter, scope: str, chunk: Sequence[dict[str, Any]]) -> None:
    try:
        writer.upsert(scope, chunk)
    except TableWriteFailed as error:
        if error.is_outage:
            raise StorageUnavailable(f"writing {len(chunk)} change(s) of {scope}: {error}") from error
        raise


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _time(value: Any) -> str:
    return format_utc(value) if isinstance(value, datetime) else str(value)
