"""A Teams message as a change-log row: who wrote what where, and a plain-text preview."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime
from typing import Any

from ...models import ChangeKind
from ...scopes import RowScope, ticks
from ..graph_api import graph_time

PREVIEW_CHARS = 280
_TAG = re.compile(r"<[^>]*>")
_BLOCK_END = re.compile(r"</(?:p|div|li|h[1-6]|tr|blockquote)>|<br\s*/?>", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_KINDS = {"created": ChangeKind.ADD, "updated": ChangeKind.UPDATE, "deleted": ChangeKind.DELETE}


def message_row(
    scope: RowScope,
    message: dict[str, Any],
    *,
    change_type: str | None,
    where: str | None,
    keep_preview: bool,
    read_at: datetime,
) -> dict[str, Any]:
    """One row per state of a message: keyed by its last change and its id, so that the
    notification and a catch-up read of the same state write one row, not two."""
    message_id = str(message.get("id", ""))
    deleted = graph_time(message.get("deletedDateTime"))
    modified = graph_time(message.get("lastModifiedDateTime")) or graph_time(message.get("createdDateTime"))
    created = graph_time(message.get("createdDateTime"))
    kind = _KINDS.get(change_type or "") or _kind_from(message, deleted, created, modified)
    if deleted is not None:
        kind = ChangeKind.DELETE
    changed_at = deleted or modified or read_at
    author_kind, author_id, author_name = author_of(message)
    preview = plain_text(message.get("body")) if keep_preview and deleted is None else ""
    where = where or _where(message)
    headline = f"{author_name or 'someone'} in {where}" if where else (author_name or "a message")
    fields = {
        "messageId": message_id,
        "teamId": (message.get("channelIdentity") or {}).get("teamId"),
        "channelId": (message.get("channelIdentity") or {}).get("channelId"),
        "chatId": message.get("chatId"),
        "replyToId": message.get("replyToId"),
        "author": author_name,
        "authorId": author_id,
        "authorKind": author_kind,
        "createdDateTime": message.get("createdDateTime"),
        "lastModifiedDateTime": message.get("lastModifiedDateTime"),
        "deletedDateTime": message.get("deletedDateTime"),
        "mentions": len(message.get("mentions") or []),
        "attachments": len(message.get("attachments") or []),
        "preview": preview or None,
    }
    return scope.row(
        f"{ticks(changed_at):020d}-{'d' if kind is ChangeKind.DELETE else 'u'}-{message_id}",
        changeType=kind.value,
        sourceChangeType=change_type or kind.value,
        time=changed_at,
        itemId=message_id,
        subject=f"{headline}: {preview}" if preview else headline,
        changedBy=author_id,
        changedByKind=author_kind,
        fields=json.dumps({name: value for name, value in fields.items() if value is not None}),
    )


def author_of(message: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """("user" or "application", its id, its display name) from a chatMessage's `from`."""
    sender = message.get("from")
    if not isinstance(sender, dict):
        return None, None, None
    for kind in ("user", "application"):
        identity = sender.get(kind)
        if isinstance(identity, dict) and identity.get("id"):
            return kind, str(identity["id"]), identity.get("displayName")
    return None, None, None


def plain_text(body: Any) -> str:
    """The message body as plain text: tags dropped, entities decoded, whitespace folded, at most
    PREVIEW_CHARS characters."""
    if not isinstance(body, dict) or not isinstance(body.get("content"), str):
        return ""
    content = body["content"]
    if str(body.get("contentType", "html")).lower() == "html":
        content = html.unescape(_TAG.sub("", _BLOCK_END.sub(" ", content)))
    text = _SPACE.sub(" ", content).strip()
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1].rstrip() + "…"


def _where(message: dict[str, Any]) -> str | None:
    if message.get("chatId"):
        return "a chat"
    if (message.get("channelIdentity") or {}).get("channelId"):
        return "a channel"
    return None


def _kind_from(
    message: dict[str, Any], deleted: datetime | None, created: datetime | None, modified: datetime | None
) -> ChangeKind:
    if deleted is not None:
        return ChangeKind.DELETE
    return ChangeKind.ADD if created is not None and created == modified else ChangeKind.UPDATE
