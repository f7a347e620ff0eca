"""SharePoint's change-log rows: a change, a resync entry, and an item a resync rebuilt.

RowKeys sort like the list's change tokens (change number, then ticks), so a page is in the order
SharePoint made the changes; a resync's rows sort after every change before the token it restarts
from and before every change after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ...models import ChangeKind, format_utc
from ...scopes import RowScope
from .change_tokens import ChangeToken, parse_change_token
from .models import CHANGE_KINDS, SharePointChange, SharePointListItem

RESYNC_NOTE = (
    "the changes in this window could not be read (the change token was older than the list's "
    "change log); items modified in it are logged as 'update' changes marked resync, and "
    "deletions inside it cannot be read back"
)


def change_row(scope: RowScope, change: SharePointChange) -> dict[str, Any]:
    token = parse_change_token(change.change_token.string_value)
    return scope.row(
        token.row_key,
        changeType=CHANGE_KINDS.get(change.change_type, ChangeKind.OTHER).value,
        sourceChangeType=change.change_type,
        changeToken=token.value,
        time=change.time,
        itemId=change.item_id,
        uniqueId=change.unique_id,
        fileName=_file_name(change.server_relative_url),
        serverRelativeUrl=change.server_relative_url,
        **_changed_by(change),
    )


# An app principal's claim: `i:0i.t|ms.sp.ext|{app id}@{tenant}` in the change log, and
# `i:0i.t|00000003-0000-0ff1-ce00-000000000000|app@sharepoint` (SharePoint App) on an item.
APP_CLAIM = "i:0i.t|"


def _changed_by(change: SharePointChange) -> dict[str, str]:
    return changed_by(change.editor, change.editor_email_hint)


def changed_by(claim: str | None, email: str | None) -> dict[str, str]:
    """The editor's email when SharePoint gives one, else its claim (an app-only caller's names
    the application id); nothing when SharePoint left both empty."""
    if email:
        return {"changedBy": email, "changedByKind": "user"}
    if claim:
        kind = "application" if claim.startswith(APP_CLAIM) else "user"
        return {"changedBy": claim, "changedByKind": kind}
    return {}


def resync_entry(scope: RowScope, restart: ChangeToken, since: datetime, reason: str) -> dict[str, Any]:
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


def resynced_item_row(scope: RowScope, restart: ChangeToken, item: SharePointListItem) -> dict[str, Any]:
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
