"""Where a change belongs and where a read goes: the value types that every layer names (the
sources write rows with them, records and checkpoints hand them to the readers), so they sit at
the bottom of the import graph.

Rows use the field names of the API's change view, so reading one back is a validation, not a
mapping. Each source keys its rows so that they sort in the order its changes were made (see its
`rows` module); a resync's rows sort after every change before it and before every change after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


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


@dataclass(frozen=True)
class ReadTarget:
    """What a read needs, from a subscription record or a checkpoint alike: the scope (the key of
    the cursor and the change log), the address the source is read at (a SharePoint site URL, a
    Graph resource path) and the subscription the rows are logged for; from a record, also what
    people call the watched thing (a list's title, a channel's '#name'), where rows say it."""

    scope: str
    address: str
    subscription_id: str
    title: str | None = None


def ticks(moment: datetime) -> int:
    """.NET ticks (100 ns since 0001-01-01): keys that sort by the time of a change."""
    return int((moment - _DOTNET_EPOCH).total_seconds() * 10_000_000)
