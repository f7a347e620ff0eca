"""Management API, poison (function key): the notification messages the worker gave up on, and
putting them back."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import azure.functions as func

from ..responses import json_response
from .common import run

if TYPE_CHECKING:
    from ..core.services import Services

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("list_poison")
@bp.route(route="poison", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_poison(req: func.HttpRequest) -> func.HttpResponse:
    return run(_list_poison, req)


@bp.function_name("replay_poison")
@bp.route(route="poison/replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def replay_poison(req: func.HttpRequest) -> func.HttpResponse:
    return run(_replay_poison, req)


def _list_poison(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from datetime import UTC, datetime

    from ..core.models import format_utc

    listing = services.poison.list()
    now = datetime.now(UTC)
    value = []
    for message in listing.messages:
        entry: dict[str, Any] = {
            "queueMessageId": message.queue_message_id,
            "messageId": message.message_id,
            "subscriptions": message.subscriptions,
            "receivedAt": format_utc(message.received_at) if message.received_at else None,
            "ageSeconds": int((now - message.received_at).total_seconds()) if message.received_at else None,
            "poisonedAt": format_utc(message.poisoned_at) if message.poisoned_at else None,
        }
        if message.failure:
            entry |= {
                "attempts": message.failure.attempts,
                "firstFailure": {
                    "reason": message.failure.first_reason,
                    "at": format_utc(message.failure.first_failed_at),
                },
                "lastFailure": {
                    "reason": message.failure.last_reason,
                    "at": format_utc(message.failure.last_failed_at),
                },
            }
        value.append({k: v for k, v in entry.items() if v is not None})
    return json_response({"value": value, "approximateCount": listing.approximate_count})


def _replay_poison(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"replayed": services.poison.replay()})
