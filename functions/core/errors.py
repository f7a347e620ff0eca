"""Errors that carry their meaning: an HTTP status, a code and a message safe to show a caller.

Every failure a caller can act on is a `ServiceError`; `answer` turns any exception into the one
JSON error the management API and the intakes send. What is not a ServiceError is a bug: logged
with its traceback and answered 500, never disguised as a retryable outage. Outages (storage, a
throttled upstream) are 503 with a Retry-After, so that callers and Microsoft 365 come back.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """Base of the failures a caller can act on. The message (str) is safe to show."""

    http_status = 500
    error_code = "InternalError"

    def public_message(self) -> str:
        return str(self)

    def headers(self) -> dict[str, str]:
        return {}

    def details(self) -> dict[str, Any]:
        return {}


class BadRequest(ServiceError):
    http_status, error_code = 400, "BadRequest"


class NotFound(ServiceError):
    http_status, error_code = 404, "NotFound"


class Conflict(ServiceError):
    http_status, error_code = 409, "Conflict"


class PayloadTooLarge(ServiceError):
    http_status, error_code = 413, "PayloadTooLarge"


class Outage(ServiceError):
    """Something this service depends on is unavailable for now: retry later."""

    http_status, error_code = 503, "ServiceUnavailable"
    retry_after_seconds = 30

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


@dataclass(frozen=True)
class ErrorAnswer:
    http_status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def answer(error: BaseException, *, operation: str) -> ErrorAnswer:
    """The JSON error for `error`, raised while doing `operation` (named in the log)."""
    # Only a loaded pydantic raises its errors: the validation echo's path never loads it.
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(error, pydantic.ValidationError):
        return _answer(400, "BadRequest", validation_summary(error))
    if isinstance(error, Outage):
        log.error("%s: %s", operation, error)
    if isinstance(error, ServiceError):
        return _answer(
            error.http_status, error.error_code, error.public_message(), error.headers(), **error.details()
        )
    log.error("%s failed unexpectedly", operation, exc_info=error)
    return _answer(500, "InternalError", f"{operation} failed; the cause is in the function's log")


def retry_after_header(seconds: float | None) -> dict[str, str]:
    # Rounded up: a Retry-After held in this process is fractional, and sooner is too soon.
    return {"Retry-After": str(math.ceil(seconds))} if seconds else {}


def validation_summary(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "body"
        problems.append(f"{where}: {item['msg']}")
    return "invalid request: " + "; ".join(problems)


def _answer(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> ErrorAnswer:
    return ErrorAnswer(status, {"error": {"code": code, "message": message, **extra}}, headers or {})
