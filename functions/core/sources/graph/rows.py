"""Graph's change-log rows: a drive item, message or event from a delta page, and a resync."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ...models import ChangeKind, format_utc
from ...scopes import RowScope, ticks
from ..graph_api import graph_time

RESYNC_NOTE = (
    "Graph could no longer read changes from the stored delta link (410); every item it returned "
    "when the round started over is logged as an 'update' marked resync, and deletions in the "
    "window cannot be read back"
)


def change_row(
    scope: RowScope, item: dict[str, Any], read_at: datetime, window_start: datetime
) -> dict[str, Any]:
    """A drive item, message or event from a delta page. RowKeys sort by the item's last change
    and repeat for a repeated state, so Graph's replays write nothing new. A removed item has no
    time of its own: it is keyed by the start of the window it was read in (the stored link's
    time), which two rounds read from the same link share."""
    item_id = str(item.get("id", ""))
    removed = "@removed" in item or "deleted" in item
    modified = None if removed else graph_time(item.get("lastModifiedDateTime"))
    if removed:
        kind, source_kind = ChangeKind.DELETE, "deleted"
    elif modified is not None and modified == graph_time(item.get("createdDateTime")):
        kind, source_kind = ChangeKind.ADD, "created"
    else:
        kind, source_kind = ChangeKind.UPDATE, "updated"
    key_time = window_start if modified is None else modified
    by_kind, by = changed_by(item.get("lastModifiedBy"))
    fields = None if removed else _fields(item)
    return scope.row(
        f"{ticks(key_time):020d}-{'d' if removed else 'u'}-{item_id}",
        changeType=kind.value,
        sourceChangeType=source_kind,
        time=modified or read_at,
        itemId=item_id,
        fileName=item.get("name") if "file" in item or "folder" in item else None,
        subject=item.get("subject"),
        changedBy=by,
        changedByKind=by_kind,
        fields=json.dumps(fields) if fields else None,
    )


def changed_by(identity_set: Any) -> tuple[str | None, str | None]:
    """Who a Graph identitySet names: ("user", email or name), else ("application", name or id)."""
    if not isinstance(identity_set, dict):
        return None, None
    for kind in ("user", "application"):
        identity = identity_set.get(kind)
        if isinstance(identity, dict):
            named = identity.get("email") or identity.get("displayName") or identity.get("id")
            if named:
                return kind, str(named)
    return None, None


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    """A drive item's name, size and folder; a message's subject, sender, arrival and read state."""
    if "file" in item or "folder" in item:
        parent = item.get("parentReference") or {}
        values = {"name": item.get("name"), "size": item.get("size"), "parentPath": parent.get("path")}
    elif "subject" in item or "receivedDateTime" in item:
        sender = ((item.get("from") or {}).get("emailAddress") or {}).get("address")
        values = {
            "subject": item.get("subject"),
            "from": sender,
            "receivedDateTime": item.get("receivedDateTime"),
            "isRead": item.get("isRead"),
        }
    else:
        return {}
    return {name: value for name, value in values.items() if value is not None}


def resync_rows(
    scope: RowScope, items: list[dict[str, Any]], read_at: datetime, since: datetime, reason: str
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
        reason=f"{reason}; {RESYNC_NOTE}",
    )
    rows = [entry]
    for item in items:
        if "@removed" in item or "deleted" in item:
            continue
        row = change_row(scope, item, read_at, read_at)
        rows.append(
            {**row, "RowKey": f"{mark}-1item-{item.get('id', '')}", "changeType": "update", "resync": True}
        )
    return rows
