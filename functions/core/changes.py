"""Change-log rows: how a change, a resync entry and a rebuilt item are written, and read back in
change-token order, a page at a time.

Rows use the field names of the API's change view, so reading one back is a validation, not a
mapping. RowKeys sort like the list's change tokens (change number, then ticks), so a page is in
the order SharePoint made the changes; a resync's rows sort after every change before the token
it restarts from and before every change after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .change_log import ChangeLog
from .change_tokens import ChangeToken, parse_change_token
from .models import ChangeKind, ChangeView, SharePointChange, SharePointListItem, format_utc
from .subscriptions import SubscriptionService

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

RESYNC_NOTE = (
    "the changes in this window could not be read (the change token was older than the list's "
    "change log); items modified in it are logged as 'update' changes marked resync, and "
    "deletions inside it cannot be read back"
)


@dataclass(frozen=True)
class ListScope:
    """Who a row belongs to: the list, its site and the subscription that read it."""

    site_url: str
    list_id: str
    subscription_id: str

    def row(self, row_key: str, **fields: Any) -> dict[str, Any]:
        row = {
            "RowKey": row_key,
            "subscriptionId": self.subscription_id,
            "siteUrl": self.site_url,
            "listId": self.list_id,
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
    rows, more = change_log.page(record.list_id, after=after, top=top)
    changes = [
        ChangeView.model_validate({**row, "id": row["RowKey"], "time": _time(row["time"])}) for row in rows
    ]
    return ChangePage(changes, changes[-1].id if more and changes else None)


def _time(value: Any) -> str:
    return format_utc(value) if isinstance(value, datetime) else str(value)
