"""Reading the change log back, in change-token order, a page at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .change_log import ChangeLog
from .models import ChangeKind, ChangeView, format_utc
from .subscriptions import SubscriptionService

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


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
        ChangeView(
            id=row["RowKey"],
            subscription_id=row["subscriptionId"],
            site_url=row["siteUrl"],
            list_id=row["listId"],
            item_id=row.get("itemId"),
            change_type=ChangeKind(row["changeType"]),
            change_token=row["changeToken"],
            time=format_utc(row["time"]) if isinstance(row["time"], datetime) else str(row["time"]),
        )
        for row in rows
    ]
    return ChangePage(changes, changes[-1].id if more and changes else None)
