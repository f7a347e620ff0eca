"""JSON responses for the HTTP triggers, and the mapping of core errors to status codes."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

log = logging.getLogger(__name__)

JSON = "application/json"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        mimetype=JSON,
        headers=headers,
    )


def error_to_response(error: BaseException, *, operation: str) -> func.HttpResponse:
    """Any failure of `operation` as the JSON error a caller can act on (core/errors.py)."""
    from .core.errors import answer

    reply = answer(error, operation=operation)
    return json_response(reply.body, reply.http_status, reply.headers or None)


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> func.HttpResponse:
    return json_response({"error": {"code": code, "message": message, **extra}}, status, headers)
