"""The URLs Microsoft 365 calls, for validation and for notifications:
`sharepoint_notifications`, `graph_notifications`, `graph_lifecycle`, `teams_notifications` and
`teams_lifecycle`."""

from __future__ import annotations

import logging
import time

import azure.functions as func

from .core.answer_times import INTAKE_ANSWERS
from .core.validation import InvalidValidationToken, checked_validation_token, find_validation_token
from .responses import error_response, error_to_response, json_response

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("sharepoint_notifications")
@bp.route(route="notifications/sharepoint", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def sharepoint_notifications(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _intake(req, context, "sharepoint", "sharepoint_notifications")


@bp.function_name("graph_notifications")
@bp.route(route="notifications/graph", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def graph_notifications(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _intake(req, context, "graph", "graph_notifications")


@bp.function_name("teams_notifications")
@bp.route(route="notifications/teams", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def teams_notifications(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _intake(req, context, "teams", "teams_notifications")


@bp.function_name("teams_lifecycle")
@bp.route(route="notifications/teams/lifecycle", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def teams_lifecycle(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _intake(req, context, "teams/lifecycle", "teams_lifecycle")


@bp.function_name("graph_lifecycle")
@bp.route(route="notifications/graph/lifecycle", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def graph_lifecycle(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _intake(req, context, "graph/lifecycle", "graph_lifecycle")


def _intake(req: func.HttpRequest, context: func.Context, route: str, name: str) -> func.HttpResponse:
    # The host has URL-decoded the query string: Graph's token (spaces, colons) arrives decoded.
    token = find_validation_token(req.params)
    if token is not None:
        return _validation_echo(token)
    if req.method != "POST":
        return error_response(405, "MethodNotAllowed", "notifications are delivered with POST")

    return _receive(req, context, route, name)


def _receive(req: func.HttpRequest, context: func.Context, route: str, name: str) -> func.HttpResponse:
    started = time.monotonic()
    try:
        return _receive_timed(req, context, route, name)
    finally:
        INTAKE_ANSWERS.record(time.monotonic() - started)


def _receive_timed(req: func.HttpRequest, context: func.Context, route: str, name: str) -> func.HttpResponse:
    # Imported here, not at the top: the validation echo above must not wait for them.
    from .core.intake import receive_notifications
    from .core.services import get_services

    traceparent = context.trace_context.trace_parent or None
    try:
        services = get_services()
        kind = services.sources.routes[route]
        result = receive_notifications(
            req.get_body(),
            subscriptions=services.subscription_lookups[kind.source],
            queue=services.intake_queue,
            traceparent=traceparent,
            kind=kind,
            tenant_id=services.settings.sharepoint_tenant_id,
            guests=services.settings.multi_tenant,
        )
    except Exception as error:
        return error_to_response(error, operation=name)
    # One line per request, however many entries it holds (traceparent: the README's KQL).
    log.info("%s: %s (traceparent %s)", name, result.summary(), traceparent or "-")
    return json_response({"accepted": result.accepted, "rejected": result.rejected}, 202)


def _validation_echo(token: str) -> func.HttpResponse:
    """Echo the token as text/plain; no storage call, so it answers fast even on a cold start."""
    try:
        body = checked_validation_token(token)
    except InvalidValidationToken as error:
        return error_to_response(error, operation="validation")
    return func.HttpResponse(
        body,
        status_code=200,
        mimetype="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )
