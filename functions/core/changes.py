"""Change-log rows, as every source writes them and the API reads them back, a page at a time.

Rows use the field names of the API's change view, so reading one back is a validation, not a
mapping. Each source keys its rows so that they sort in the order its changes were made (see its
`rows` module); a resync's rows sort after every change before it and before every change after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .change_log import ChangeLog
from .models import ChangeView, format_utc

if TYPE_CHECKING:
    from .subscriptions import SubscriptionService

_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class RowScope:
    """Who a row belongs to: the subscription that read it, its source, and what the source
    calls the changed thing's home (a list and its site, a Graph resource)."""

    subscription_id: str
    source: str
    site_url: str | None = None
    list_id: str | None = None
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


def ticks(moment: datetime) -> int:
    """.NET ticks (100 ns since 0001-01-01): keys that sort by the time of a change."""
    return int((moment - _DOTNET_EPOCH).total_seconds() * 10_000_000)


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
