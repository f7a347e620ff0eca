"""What each sink is sent for a batch of changes: Adaptive Cards for Teams workflows, MessageCards
for legacy connector endpoints, and a signed JSON batch for webhooks.

Everything shown comes from Microsoft 365 (titles, file names, URLs) and is untrusted: Markdown is
escaped, so a file named `[click](https://evil)` shows as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from standardwebhooks import Webhook

from ..models import ChangeKind, ChangeView

# Teams refuses a message over 28 KB; keep a margin for the envelope's own bytes.
MAX_PAYLOAD_BYTES = 27 * 1024
ADAPTIVE_CARD_VERSION = "1.5"  # the newest Teams renders
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<])")


def plain(text: str) -> str:
    """Text that Teams' Markdown renders as itself."""
    return _MARKDOWN.sub(r"\\\1", text)


def label(change: ChangeView) -> str:
    if change.file_name:
        return change.file_name
    if change.subject:
        return change.subject
    if change.item_id is not None:
        return f"item {change.item_id}"
    return "the list" if change.change_type.value == "resync" else "—"


def link(change: ChangeView) -> str | None:
    """Where a person can open the item, when the change says enough to know."""
    if change.site_url and change.server_relative_url:
        parts = urlsplit(change.site_url)
        return f"{parts.scheme}://{parts.netloc}{quote(change.server_relative_url)}"
    if change.site_url and change.list_id and isinstance(change.item_id, int):
        form = f"PageType=4&ListId=%7B{change.list_id}%7D&ID={change.item_id}"
        return f"{change.site_url}/_layouts/15/listform.aspx?{form}"
    return None


def fact(change: ChangeView) -> dict[str, str]:
    when = change.time.replace("T", " ").replace("Z", " UTC")
    target = link(change)
    value = f"{plain(when)} · [open]({target})" if target else plain(when)
    lines = [value, *field_lines(change)]
    return {
        "title": f"{change.change_type.value} · {plain(label(change))}"[:200],
        "value": "\n\n".join(lines),
    }


def field_lines(change: ChangeView) -> list[str]:
    """ "Status: Draft → Approved" for each followed field that moved; the values alone when the
    earlier ones are not known."""
    if change.changed_fields:
        return [
            f"{plain(name)}: {_shown(moved.get('before'))} → {_shown(moved.get('after'))}"
            for name, moved in change.changed_fields.items()
        ]
    if change.fields_before_unknown and change.fields:
        return [f"{plain(name)}: {_shown(value)}" for name, value in change.fields.items()]
    return []


def _shown(value: object) -> str:
    if value is None or value == "":
        return "(empty)"
    text = value if isinstance(value, str) else json.dumps(value)
    return plain(text[:120] + "…" if len(text) > 120 else text)


def where(changes: list[ChangeView]) -> str:
    first = changes[0]
    return plain(first.site_url or first.resource or "Microsoft 365")


def _split(
    changes: list[ChangeView], build: Callable[[list[ChangeView]], dict[str, Any]]
) -> Iterator[dict[str, Any]]:
    """As many changes per payload as fit under the size limit (one at the least)."""
    batch: list[ChangeView] = []
    for change in changes:
        if batch and len(json.dumps(build([*batch, change]))) > MAX_PAYLOAD_BYTES:
            yield build(batch)
            batch = []
        batch.append(change)
    if batch:
        yield build(batch)


def adaptive_card_messages(changes: list[ChangeView]) -> list[dict[str, Any]]:
    """Teams workflow messages: an Adaptive Card in the `message` envelope, a fact per change."""

    def message(batch: list[ChangeView]) -> dict[str, Any]:
        card = {
            "type": "AdaptiveCard",
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": ADAPTIVE_CARD_VERSION,
            "body": [
                {
                    "type": "TextBlock",
                    "text": f"{len(batch)} change(s) in {where(batch)}",
                    "weight": "Bolder",
                    "wrap": True,
                },
                {"type": "FactSet", "facts": [fact(change) for change in batch]},
            ],
        }
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }

    return list(_split(changes, message))


def message_cards(changes: list[ChangeView]) -> list[dict[str, Any]]:
    """Legacy connector cards: `summary` is required (or `text`), facts in one section."""

    def card(batch: list[ChangeView]) -> dict[str, Any]:
        title = f"{len(batch)} change(s) in {where(batch)}"
        return {
            "@type": "MessageCard",
            "@context": "http://schema.org/extensions",
            "summary": title,
            "title": title,
            "sections": [{"facts": [{"name": f["title"], "value": f["value"]} for f in map(fact, batch)]}],
        }

    return list(_split(changes, card))


def webhook_body(batch_id: str, changes: list[ChangeView], now: datetime) -> str:
    """A JSON batch of change rows, as GET /api/changes returns them."""
    return json.dumps(
        {
            "type": "m365.changes",
            "batchId": batch_id,
            "sentAt": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "changes": [
                change.model_dump(mode="json", by_alias=True, exclude_none=True) for change in changes
            ],
        },
        separators=(",", ":"),
    )


def sample_changes(subscription_id: str, source: str, resource: str, now: datetime) -> list[ChangeView]:
    """What `POST …/sinks/{id}/test` sends: one made-up change, marked as a test."""
    return [
        ChangeView(
            id="test",
            subscription_id=subscription_id,
            source=source,
            resource=resource,
            change_type=ChangeKind.UPDATE,
            time=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
            subject="Test message from the Microsoft 365 webhook service",
        )
    ]


def alert_card(event: dict[str, Any]) -> dict[str, Any]:
    """The Teams workflow message for an alert: an Adaptive Card with the summary and its facts."""
    subject = (
        ("tenant", event["tenantId"]) if "tenantId" in event else ("subscription", event["subscriptionId"])
    )
    facts = [
        {"title": subject[0], "value": subject[1]},
        {"title": "condition", "value": event["condition"]},
        {"title": "state", "value": event["state"]},
        {"title": "when", "value": event["at"].replace("T", " ").replace("Z", " UTC")},
    ]
    if event.get("detail"):
        facts.append({"title": "detail", "value": event["detail"]})
    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": event["summary"], "weight": "Bolder", "wrap": True},
            {"type": "FactSet", "facts": facts},
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def alert_headers(event: dict[str, Any], secrets: list[str], now: datetime) -> tuple[bytes, dict[str, str]]:
    """A webhook alert, signed as every webhook sink's batches are (Standard Webhooks)."""
    body = json.dumps(event, separators=(",", ":"))
    signatures = " ".join(Webhook(secret).sign(event["id"], now, body) for secret in secrets)
    headers = {
        "Content-Type": "application/json",
        "webhook-id": event["id"],
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }
    return body.encode(), headers
