"""Management API (function key): subscriptions and the change log; and an anonymous health check."""

from __future__ import annotations

import logging
from collections.abc import Callable

import azure.functions as func
from pydantic import ValidationError

from .core.models import CreateSubscriptionRequest, dump
from .core.outbound import UpstreamError
from .core.storage import StorageUnavailable
from .core.subscriptions import InvalidSubscriptionRequest, SubscriptionConflict, SubscriptionNotFound
from .responses import error_response, json_response

log = logging.getLogger(__name__)
bp = func.Blueprint()


@bp.function_name("subscriptions_api")
@bp.route(route="subscriptions", methods=["GET", "POST"], auth_level=func.AuthLevel.FUNCTION)
def subscriptions_api(req: func.HttpRequest) -> func.HttpResponse:
    if req.method == "POST":
        return _respond(lambda services: _create(services, req))
    return _respond(
        lambda services: json_response(
            {"value": [dump(r.to_view()) for r in services.subscriptions.list()]}
        )
    )


@bp.function_name("subscription_item_api")
@bp.route(route="subscriptions/{id}", methods=["GET", "DELETE"], auth_level=func.AuthLevel.FUNCTION)
def subscription_item_api(req: func.HttpRequest) -> func.HttpResponse:
    subscription_id = req.route_params["id"]
    if req.method == "DELETE":
        return _respond(lambda services: _delete(services, subscription_id))
    return _respond(
        lambda services: json_response(dump(services.subscriptions.get(subscription_id).to_view()))
    )


@bp.function_name("subscription_renew_api")
@bp.route(route="subscriptions/{id}/renew", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def subscription_renew_api(req: func.HttpRequest) -> func.HttpResponse:
    subscription_id = req.route_params["id"]
    return _respond(
        lambda services: json_response(dump(services.subscriptions.renew(subscription_id).to_view()))
    )


@bp.function_name("changes_api")
@bp.route(route="changes", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def changes_api(req: func.HttpRequest) -> func.HttpResponse:
    return _respond(lambda services: _changes(services, req))


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from .core.health import check_storage
    from .core.services import get_services

    problem = check_storage(get_services().storage)
    if problem:
        return json_response({"status": "unhealthy", "storage": problem}, 503)
    return json_response({"status": "ok", "storage": "ok"})


def _create(services, req: func.HttpRequest) -> func.HttpResponse:
    try:
        request = CreateSubscriptionRequest.model_validate_json(req.get_body() or b"")
    except ValidationError as error:
        return error_response(400, "BadRequest", _validation_summary(error))
    record = services.subscriptions.create(request)
    location = f"/api/subscriptions/{record.id}"
    return json_response(dump(record.to_view()), 201, headers={"Location": location})


def _delete(services, subscription_id: str) -> func.HttpResponse:
    services.subscriptions.delete(subscription_id)
    return func.HttpResponse(status_code=204)


def _changes(services, req: func.HttpRequest) -> func.HttpResponse:
    from .core.changes import MAX_PAGE_SIZE, list_changes

    subscription_id = req.params.get("subscriptionId")
    if not subscription_id:
        return error_response(400, "BadRequest", "the subscriptionId query parameter is required")
    try:
        top = int(req.params.get("top", "100"))
    except ValueError:
        top = 0
    if not 1 <= top <= MAX_PAGE_SIZE:
        return error_response(400, "BadRequest", f"top must be a whole number from 1 to {MAX_PAGE_SIZE}")
    after = req.params.get("after", "")
    page = list_changes(
        services.subscriptions, services.change_log, subscription_id, after=after, top=top
    )
    body: dict = {"value": [dump(change) for change in page.changes]}
    if page.next_after:
        body["nextLink"] = _next_link(req.url, subscription_id, top, page.next_after)
    return json_response(body)


def _next_link(url: str, subscription_id: str, top: int, after: str) -> str:
    from urllib.parse import urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = urlencode({"subscriptionId": subscription_id, "top": top, "after": after})
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _respond(operation: Callable[..., func.HttpResponse]) -> func.HttpResponse:
    """Run one management operation and turn each kind of failure into a clear JSON error."""
    from .core.services import get_services
    from .core.storage import storage_errors

    try:
        return operation(get_services())
    except SubscriptionNotFound as error:
        return error_response(404, "NotFound", f"no subscription {error}")
    except SubscriptionConflict as error:
        return error_response(409, "Conflict", str(error))
    except InvalidSubscriptionRequest as error:
        return error_response(400, "BadRequest", str(error))
    except UpstreamError as error:
        return _upstream_response(error)
    except StorageUnavailable as error:
        log.error("management API could not reach storage: %s", error)
        return error_response(503, "StorageUnavailable", "storage is unavailable; retry later")
    except storage_errors() as error:
        log.error("management API storage call failed: %s", error)
        return error_response(503, "StorageUnavailable", "storage is unavailable; retry later")


def _upstream_response(error: UpstreamError) -> func.HttpResponse:
    """SharePoint's answer, passed on: its status where it is the caller's to fix, else 502/503."""
    if error.status in (400, 404):
        status = error.status
    elif error.status in (429, 503):
        status = 503
    else:
        status = 502
    headers = {"Retry-After": str(int(error.retry_after))} if error.retry_after else None
    return error_response(
        status, "UpstreamError", f"{error.service} {error.operation}: {error.upstream_message}",
        headers=headers, upstreamStatus=error.status, upstreamCode=error.code,
        requestId=error.request_id,
    )


def _validation_summary(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "body"
        problems.append(f"{where}: {item['msg']}")
    return "invalid request: " + "; ".join(problems)
