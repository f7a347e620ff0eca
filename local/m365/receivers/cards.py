"""What Teams and connector endpoints check in a body they are sent: the Adaptive Card schema,
Teams' size limit, MessageCard's required fields."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

MAX_TEAMS_BYTES = 28 * 1024
ADAPTIVE_CARD_TYPE = "application/vnd.microsoft.card.adaptive"


@cache
def _adaptive_card_validator() -> Any:
    from jsonschema.validators import Draft6Validator

    schema = json.loads(resources.files("adaptive_cards").joinpath("schemas/schema-1.5.json").read_text())
    return Draft6Validator(schema)


def adaptive_card_problems(card: Any) -> list[str]:
    """What Teams would refuse in a card: the official schema, and versions past 1.5."""
    if not isinstance(card, dict):
        return ["the attachment's content is not an object"]
    problems = [error.message[:200] for error in _adaptive_card_validator().iter_errors(card)]
    try:
        if float(str(card.get("version"))) > 1.5:
            problems.append(f"version {card.get('version')} is newer than Teams renders (1.5)")
    except ValueError:
        problems.append("version is not a number")
    return problems


def teams_problems(raw: bytes) -> tuple[int, list[str]]:
    if len(raw) > MAX_TEAMS_BYTES:
        return 413, [f"{len(raw)} bytes is over Teams' 28 KB"]
    try:
        body = json.loads(raw)
    except ValueError:
        return 400, ["not JSON"]
    if not isinstance(body, dict) or body.get("type") != "message":
        return 400, ['the envelope must be {"type": "message", "attachments": [...]}']
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return 400, ["attachments must be a non-empty list"]
    problems = []
    for attachment in attachments:
        if not isinstance(attachment, dict) or attachment.get("contentType") != ADAPTIVE_CARD_TYPE:
            problems.append(f"contentType must be {ADAPTIVE_CARD_TYPE}")
            continue
        problems += adaptive_card_problems(attachment.get("content"))
    return (400 if problems else 202), problems


def message_card_problem(raw: bytes) -> str | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return "Request body is not valid JSON."
    if not isinstance(body, dict) or body.get("@type") != "MessageCard":
        return "Card type is not supported."
    if body.get("@context") not in ("http://schema.org/extensions", "https://schema.org/extensions"):
        return "Card @context is not supported."
    if not body.get("summary") and not body.get("text"):
        return "Summary or Text is required."
    return None
