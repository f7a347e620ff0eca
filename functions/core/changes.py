"""Change-log rows: how a change, a resync entry and a rebuilt item are written, and read back in
change-token order, a page at a time.

Rows use the field names of the API's change view, so reading one back is a validation, not a
mapping. RowKeys sort like the list's change tokens (change number, then ticks), so a page is in
the order SharePoint made the changes; a resync's rows sort after every change before the token
it restarts from and before every change after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .change_log import ChangeLog
from .change_tokens import ChangeToken, parse_change_token
from .models import ChangeKind, ChangeView, SharePointChange, SharePointListItem, format_utc
from .subscriptions import SubscriptionService

_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

GRAPH_RESYNC_NOTE = (
    "Graph could no longer read changes from the stored delta link (410); every item it returned "
    "when the round started over is logged as an 'update' marked resync, and deletions in the "
    "window cannot be read back"
)
RESYNC_NOTE = (
    "the changes in this window could not be read (the change token was older than the list's "
    "change log); items modified in it are logged as 'update' changes marked resync, and "
    "deletions inside it cannot be read back"
)


@dataclass(frozen=True)
class ListScope:
    """Who a row belongs to: the list and its site (SharePoint) or the resource (Graph), and the
    subscription that read it."""

    site_url: str | None
    list_id: str | None
    subscription_id: str
    source: str = "sharepoint"
    resource: str | None = None

    def row(self, row_key: str, **fields: Any) -> dict[str, Any]:
        row = {
            "RowKey": row_key,
            "subscriptionId": self.subscription_id,
            "source": self.source,
            "siteUrl": self.site_url,
            "listId": self.list_id,
            "resource": self.resource,
            **fields,
        }
        return {name: value for name, value in row.items() if value is not None}


def change_row(scope: ListScope, change: SharePointChange) -> dict[str, Any]:
    token = parse_change_token(change.change_token.string_value)
    return scope.row(
        token.row_key,
        changeType=ChangeKind.from_sharepoint(change.change_type).value,
        sourceChangeType=change.change_type,
        changeToken=token.value,
        time=change.time,
        itemId=change.item_id,
        uniqueId=change.unique_id,
        fileName=_file_name(change.server_relative_url),
        serverRelativeUrl=change.server_relative_url,
    )


def resync_entry(scope: ListScope, restart: ChangeToken, since: datetime, reason: str) -> dict[str, Any]:
    return scope.row(
        f"{restart.row_key}-0resync",
        changeType=ChangeKind.RESYNC.value,
        changeToken=restart.value,
        time=restart.time,
        resync=True,
        resyncFrom=format_utc(since),
        resyncTo=format_utc(restart.time),
        reason=f"{reason}; {RESYNC_NOTE}",
    )


def resynced_item_row(scope: ListScope, restart: ChangeToken, item: SharePointListItem) -> dict[str, Any]:
    return scope.row(
        f"{restart.row_key}-1item-{item.id:010d}",
        changeType=ChangeKind.UPDATE.value,
        time=item.modified,
        itemId=item.id,
        uniqueId=item.unique_id,
        fileName=item.file_name,
        serverRelativeUrl=item.server_relative_url,
        resync=True,
    )


def graph_change_row(
    scope: ListScope, item: dict[str, Any], read_at: datetime, window_start: datetime
) -> dict[str, Any]:
    """A drive item, message or event from a delta page. RowKeys sort by the item's last change
    and repeat for a repeated state, so Graph's replays write nothing new. A removed item has no
    time of its own: it is keyed by the start of the window it was read in (the stored link's
    time), which two rounds read from the same link share."""
    item_id = str(item.get("id", ""))
    removed = "@removed" in item or "deleted" in item
    modified = None if removed else _graph_time(item.get("lastModifiedDateTime"))
    if removed:
        kind, source_kind = ChangeKind.DELETE, "deleted"
    elif modified is not None and modified == _graph_time(item.get("createdDateTime")):
        kind, source_kind = ChangeKind.ADD, "created"
    else:
        kind, source_kind = ChangeKind.UPDATE, "updated"
    key_time = window_start if modified is None else modified
    return scope.row(
        f"{ticks(key_time):020d}-{'d' if removed else 'u'}-{item_id}",
        changeType=kind.value,
        sourceChangeType=source_kind,
        time=modified or read_at,
        itemId=item_id,
        fileName=item.get("name") if "file" in item or "folder" in item else None,
        subject=item.get("subject"),
    )


def graph_resync_rows(
    scope: ListScope, items: list[dict[str, Any]], read_at: datetime, since: datetime, reason: str
) -> list[dict[str, Any]]:
    """After a 410: the entry saying so, then every item the new round returned as an update."""
    mark = f"{ticks(read_at):020d}"
    entry = scope.row(
        f"{mark}-0resync",
        changeType=ChangeKind.RESYNC.value,
        time=read_at,
        resync=True,
        resyncFrom=format_utc(since),
        resyncTo=format_utc(read_at),
        reason=f"{reason}; {GRAPH_RESYNC_NOTE}",
    )
    rows = [entry]
    for item in items:
        if "@removed" in item or "deleted" in item:
            continue
        row = graph_change_row(scope, item, read_at, read_at)
        rows.append(
            {**row, "RowKey": f"{mark}-1item-{item.get('id', '')}", "changeType": "update", "resync": True}
        )
    return rows


def ticks(moment: datetime) -> int:
    """.NET ticks (100 ns since 0001-01-01): a Graph row's key sorts by the time of its change."""
    return int((moment - _DOTNET_EPOCH).total_seconds() * 10_000_000)


def _graph_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _file_name(server_relative_url: str | None) -> str | None:
    return server_relative_url.rsplit("/", 1)[-1] if server_relative_url else None


@dataclass(frozen=True)
class ChangePage:
    changes: list[ChangeView]
    next_after: str | None


def list_changes(
    subscriptions: SubscriptionService,
    change_log: ChangeLog,
    subscription_id: str,
    *,
    after: str = "",
    top: int = DEFAULT_PAGE_SIZE,
) -> ChangePage:
    """Changes of the subscription's list after the change id `after`.

    The log is kept per list, so a subscription that was recreated keeps its history.
    """
    record = subscriptions.get(subscription_id)
    rows, more = change_log.page(record.scope, after=after, top=top)
    changes = [row_to_view(row) for row in rows]
    return ChangePage(changes, changes[-1].id if more and changes else None)


def row_to_view(row: dict[str, Any]) -> ChangeView:
    return ChangeView.model_validate({**row, "id": row["RowKey"], "time": _time(row["time"])})


def _time(value: Any) -> str:
    return format_utc(value) if isinstance(value, datetime) else str(value)
