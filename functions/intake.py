"""`sharepoint_notifications`: the URL SharePoint calls, for validation and for notifications."""

from __future__ import annotations

import logging

import azure.functions as func

from .core.intake import (
    BadNotificationRequest,
    InvalidValidationToken,
    PayloadTooLarge,
    checked_validation_token,
    find_validation_token,
    receive_notifications,
)
from .core.storage import StorageUnavailable
from .responses import error_response, json_response

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("sharepoint_notifications")
@bp.route(route="notifications/sharepoint", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def sharepoint_notifications(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    token = find_validation_token(req.params)
    if token is not None:
        return _validation_echo(token)
    if req.method != "POST":
        return error_response(405, "MethodNotAllowed", "notifications are delivered with POST")

    from .core.services import get_services

    services = get_services()
    traceparent = context.trace_context.trace_parent or None
    try:
        result = receive_notifications(
            req.get_body(),
            subscriptions=services.subscription_lookup,
            queue=services.notification_queue,
            traceparent=traceparent,
        )
    except PayloadTooLarge as error:
        return error_response(413, "PayloadTooLarge", str(error))
    except BadNotificationRequest as error:
        return error_response(400, "BadRequest", str(error))
    except StorageUnavailable as error:
        log.error("notification intake could not reach storage: %s", error)
        return error_response(
            503,
            "StorageUnavailable",
            "storage is unavailable; retry later",
            headers={"Retry-After": "30"},
        )
    # One line per request, however many entries it holds (traceparent: the README's KQL).
    log.info("sharepoint_notifications: %s (traceparent %s)", result.summary(), traceparent or "-")
    return json_response({"accepted": result.accepted, "rejected": result.rejected}, 202)


def _validation_echo(token: str) -> func.HttpResponse:
    """Echo the token as text/plain; no storage call, so it answers fast even on a cold start."""
    try:
        body = checked_validation_token(token)
    except InvalidValidationToken as error:
        return error_response(400, "InvalidValidationToken", str(error))
    return func.HttpResponse(
        body,
        status_code=200,
        mimetype="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )
