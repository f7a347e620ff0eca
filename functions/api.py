"""Management API (function key): one function per operation, so that Application Insights counts
requests and failures per operation; and an anonymous health check."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import azure.functions as func

from .responses import error_response, json_response

if TYPE_CHECKING:
    from pydantic import ValidationError

    from .core.outbound import UpstreamError
    from .core.services import Services

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]

# How long a client should wait before retrying after storage was unavailable.
STORAGE_RETRY_AFTER_SECONDS = 30
DEFAULT_CHANGES_PAGE = 100
DEFAULT_SUBSCRIPTIONS_PAGE = 100
MAX_SUBSCRIPTIONS_PAGE = 1000

Operation = Callable[["Services", func.HttpRequest], func.HttpResponse]


@bp.function_name("create_subscription")
@bp.route(route="subscriptions", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def create_subscription(req: func.HttpRequest) -> func.HttpResponse:
    return _run(_create_subscription, req)


@bp.function_name("list_subscriptions")
@bp.route(route="subscriptions", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_subscriptions(req: func.HttpRequest) -> func.HttpResponse:
    return _run(_list_subscriptions, req)


@bp.function_name("get_subscription")
@bp.route(route="subscriptions/{id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_subscription(req: func.HttpRequest) -> func.HttpResponse:
    return _run(_get_subscription, req)


@bp.function_name("delete_subscription")
@bp.route(route="subscriptions/{id}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def delete_subscription(req: func.HttpRequest) -> func.HttpResponse:
    return _run(_delete_subscription, req)


@bp.function_name("renew_subscription")
@bp.route(route="subscriptions/{id}/renew", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def renew_subscription(req: func.HttpRequest) -> func.HttpResponse:
    return _run(_renew_subscription, req)


@bp.function_name("list_changes")
@bp.route(route="changes", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_changes(req: func.HttpRequest) -> func.HttpResponse:
    return _run(_list_changes, req)


@bp.function_name("create_sink")
@bp.route(route="subscriptions/{id}/sinks", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def create_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _run(partial(_create_sink, invocation_id=context.invocation_id), req)


@bp.function_name("list_sinks")
@bp.route(route="subscriptions/{id}/sinks", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_sinks(req: func.HttpRequest) -> func.HttpResponse:
    return _run(_list_sinks, req)


@bp.function_name("get_sink")
@bp.route(route="subscriptions/{id}/sinks/{sinkId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_sink(req: func.HttpRequest) -> func.HttpResponse:
    return _run(_get_sink, req)


@bp.function_name("delete_sink")
@bp.route(route="subscriptions/{id}/sinks/{sinkId}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def delete_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _run(partial(_delete_sink, invocation_id=context.invocation_id), req)


@bp.function_name("test_sink")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/test", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
def test_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _run(partial(_test_sink, invocation_id=context.invocation_id), req)


@bp.function_name("redeliver_sink")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/redeliver", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
def redeliver_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _run(partial(_redeliver_sink, invocation_id=context.invocation_id), req)


@bp.function_name("replay_sink")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
def replay_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _run(partial(_replay_sink, invocation_id=context.invocation_id), req)


@bp.function_name("enable_sink")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/enable", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
def enable_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _run(partial(_enable_sink, invocation_id=context.invocation_id), req)


@bp.function_name("disable_sink")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/disable", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
def disable_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _run(partial(_disable_sink, invocation_id=context.invocation_id), req)


@bp.function_name("rotate_sink_secret")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/rotate-secret",
    methods=["POST"],
    auth_level=func.AuthLevel.FUNCTION,
)
def rotate_sink_secret(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return _run(partial(_rotate_sink_secret, invocation_id=context.invocation_id), req)


@bp.function_name("list_site_lists")
@bp.route(route="sites/lists", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_site_lists(req: func.HttpRequest) -> func.HttpResponse:
    return _run(_list_site_lists, req)


@bp.function_name("list_poison")
@bp.route(route="poison", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_poison(req: func.HttpRequest) -> func.HttpResponse:
    return _run(_list_poison, req)


@bp.function_name("replay_poison")
@bp.route(route="poison/replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def replay_poison(req: func.HttpRequest) -> func.HttpResponse:
    return _run(_replay_poison, req)


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from .core.health import check_storage
    from .core.services import get_services

    problem = check_storage(get_services().intake_storage)
    if problem:
        return json_response({"status": "unhealthy", "storage": problem}, 503)
    return json_response({"status": "ok", "storage": "ok"})


# --- the operations ------------------------------------------------------------------------------


def _create_subscription(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from .core.models import CreateGraphSubscriptionRequest, CreateSubscriptionRequest, dump

    body = req.get_body() or b""
    request: CreateSubscriptionRequest | CreateGraphSubscriptionRequest
    if _names_source(body, "graph"):
        request = CreateGraphSubscriptionRequest.model_validate_json(body)
    else:
        request = CreateSubscriptionRequest.model_validate_json(body)
    record = services.subscriptions.create(request)
    location = f"/api/subscriptions/{record.id}"
    return json_response(dump(record.to_view()), 201, headers={"Location": location})


def _names_source(body: bytes, source: str) -> bool:
    import json

    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return False  # the model's own parse reports it
    return isinstance(document, dict) and document.get("source") == source


def _list_subscriptions(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from .core.models import dump

    top = _top(req, DEFAULT_SUBSCRIPTIONS_PAGE, MAX_SUBSCRIPTIONS_PAGE)
    if top is None:
        return error_response(
            400, "BadRequest", f"top must be a whole number from 1 to {MAX_SUBSCRIPTIONS_PAGE}"
        )
    records, next_after = services.subscriptions.page(after=req.params.get("after", ""), top=top)
    body: dict[str, Any] = {
        "value": [dump(services.subscriptions.view(record, services.renewal_window)) for record in records]
    }
    if next_after:
        body["nextLink"] = _next_link(req.url, {"top": top, "after": next_after})
    return json_response(body)


def _get_subscription(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from .core.models import dump

    record = services.subscriptions.get(req.route_params["id"])
    health = services.subscriptions.health(record, sinks=services.sinks.states(record.id))
    view = services.subscriptions.view(record, services.renewal_window)
    return json_response(dump(view.model_copy(update={"health": health})))


def _list_site_lists(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from .core.models import dump

    site_url = services.subscriptions.absolute_site_url(req.params.get("siteUrl", ""))
    return json_response({"value": [dump(item) for item in services.worker.source.lists(site_url)]})


def _delete_subscription(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    services.sinks.delete_subscription(req.route_params["id"])
    return func.HttpResponse(status_code=204)


def _renew_subscription(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from .core.models import dump

    return json_response(dump(services.subscriptions.renew(req.route_params["id"]).to_view()))


def _list_changes(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from .core.changes import MAX_PAGE_SIZE, list_changes
    from .core.models import dump

    subscription_id = req.params.get("subscriptionId")
    if not subscription_id:
        return error_response(400, "BadRequest", "the subscriptionId query parameter is required")
    top = _top(req, DEFAULT_CHANGES_PAGE, MAX_PAGE_SIZE)
    if top is None:
        return error_response(400, "BadRequest", f"top must be a whole number from 1 to {MAX_PAGE_SIZE}")
    page = list_changes(
        services.subscriptions,
        services.change_log,
        subscription_id,
        after=req.params.get("after", ""),
        top=top,
    )
    body: dict[str, Any] = {"value": [dump(change) for change in page.changes]}
    if page.next_after:
        body["nextLink"] = _next_link(
            req.url, {"subscriptionId": subscription_id, "top": top, "after": page.next_after}
        )
    return json_response(body)


def _create_sink(services: Services, req: func.HttpRequest, *, invocation_id: str) -> func.HttpResponse:
    from .core.sinks.service import CreateSinkRequest

    request = CreateSinkRequest.model_validate_json(req.get_body() or b"")
    sink, secret = services.sinks.create(req.route_params["id"], request, invocation_id)
    body = services.sinks.view(sink)
    if secret:
        body["secret"] = secret  # shown once: it is kept only sealed, and never shown again
    location = f"/api/subscriptions/{sink.subscription_id}/sinks/{sink.id}"
    return json_response(body, 201, headers={"Location": location, "Cache-Control": "no-store"})


def _list_sinks(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"value": services.sinks.views(req.route_params["id"])})


def _get_sink(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    sink = services.sinks.get(req.route_params["id"], req.route_params["sinkId"])
    return json_response(services.sinks.view(sink))


def _delete_sink(services: Services, req: func.HttpRequest, *, invocation_id: str) -> func.HttpResponse:
    services.sinks.delete(req.route_params["id"], req.route_params["sinkId"], invocation_id)
    return func.HttpResponse(status_code=204)


def _test_sink(services: Services, req: func.HttpRequest, *, invocation_id: str) -> func.HttpResponse:
    outcome = services.sinks.test(req.route_params["id"], req.route_params["sinkId"], invocation_id)
    body = {
        "delivered": outcome.ok,
        "endpointStatus": outcome.status,
        "elapsedMs": round(outcome.elapsed * 1000),
        "detail": outcome.detail,
    }
    return json_response(body)


def _redeliver_sink(services: Services, req: func.HttpRequest, *, invocation_id: str) -> func.HttpResponse:
    services.sinks.retry_now(req.route_params["id"], req.route_params["sinkId"], invocation_id)
    return json_response({"requeued": 1}, 202)


def _replay_sink(services: Services, req: func.HttpRequest, *, invocation_id: str) -> func.HttpResponse:
    from .core.sinks.service import ReplayRequest

    request = ReplayRequest.model_validate_json(req.get_body() or b"")
    count = services.sinks.replay(req.route_params["id"], req.route_params["sinkId"], request, invocation_id)
    return json_response({"rows": count}, 202)


def _enable_sink(services: Services, req: func.HttpRequest, *, invocation_id: str) -> func.HttpResponse:
    sink = services.sinks.enable(req.route_params["id"], req.route_params["sinkId"], invocation_id)
    return json_response(services.sinks.view(sink))


def _disable_sink(services: Services, req: func.HttpRequest, *, invocation_id: str) -> func.HttpResponse:
    sink = services.sinks.disable(req.route_params["id"], req.route_params["sinkId"], invocation_id)
    return json_response(services.sinks.view(sink))


def _rotate_sink_secret(
    services: Services, req: func.HttpRequest, *, invocation_id: str
) -> func.HttpResponse:
    from .core.sinks.service import RotateSecretRequest

    request = RotateSecretRequest.model_validate_json(req.get_body() or b"{}")
    sink, secret = services.sinks.rotate_secret(
        req.route_params["id"], req.route_params["sinkId"], request, invocation_id
    )
    return json_response(
        {**services.sinks.view(sink), "secret": secret}, headers={"Cache-Control": "no-store"}
    )


def _list_poison(services: Services, req: func.HttpRequest) -> func.HttpResponse:
    from datetime import UTC, datetime

    from .core.models import format_utc

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


def _top(req: func.HttpRequest, default: int, maximum: int) -> int | None:
    """The `top` query parameter, or None when it is not a whole number from 1 to `maximum`."""
    # Digits only: int() would also take " 5", "+7", "1_000" and Arabic-Indic digits.
    raw_top = req.params.get("top", str(default))
    top = int(raw_top) if re.fullmatch(r"[0-9]{1,4}", raw_top) else 0
    return top if 1 <= top <= maximum else None


def _next_link(url: str, query: dict[str, Any]) -> str:
    from urllib.parse import urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


# --- one table from failures to responses ----------------------------------------------------------


def _run(operation: Operation, req: func.HttpRequest) -> func.HttpResponse:
    from .core.services import get_services

    try:
        return operation(get_services(), req)
    except Exception as error:
        name = getattr(operation, "func", operation).__name__
        return error_to_response(error, operation=name.lstrip("_"))


def error_to_response(error: Exception, *, operation: str) -> func.HttpResponse:
    """Each kind of failure of a management operation, as the JSON error a caller can act on.

    Anything not in the table is a bug: logged with its traceback and answered 500, never
    disguised as a retryable outage.
    """
    from pydantic import ValidationError

    from .core.outbound import UpstreamError
    from .core.sinks.record import InvalidSink
    from .core.sinks.service import SinkNotFound
    from .core.sinks.store import SinkChanged
    from .core.storage import StorageUnavailable
    from .core.subscriptions import InvalidSubscriptionRequest, SubscriptionConflict, SubscriptionNotFound

    if isinstance(error, ValidationError):
        return error_response(400, "BadRequest", _validation_summary(error))
    if isinstance(error, InvalidSubscriptionRequest | InvalidSink):
        return error_response(400, "BadRequest", str(error))
    if isinstance(error, SinkNotFound):
        return error_response(404, "NotFound", f"no sink {error}")
    if isinstance(error, SubscriptionNotFound):
        return error_response(404, "NotFound", f"no subscription {error}")
    if isinstance(error, SinkChanged):
        return error_response(409, "Conflict", f"sink {error} was changed by another request; retry")
    if isinstance(error, SubscriptionConflict):
        return error_response(409, "Conflict", str(error))
    if isinstance(error, UpstreamError):
        return _upstream_response(error)
    if isinstance(error, StorageUnavailable):
        log.error("%s: storage is unavailable: %s", operation, error)
        return error_response(
            503,
            "StorageUnavailable",
            "storage is unavailable; retry later",
            headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
        )
    log.exception("%s failed unexpectedly", operation)
    return error_response(500, "InternalError", f"{operation} failed; the cause is in the function's log")


def _upstream_response(error: UpstreamError) -> func.HttpResponse:
    """SharePoint's answer, passed on: its status where it is the caller's to fix, else 502/503."""
    if error.status in (400, 404):
        status = error.status
    elif error.status in (429, 503):
        status = 503
    else:
        status = 502
    # Rounded up: a Retry-After held in this process is fractional, and sooner is too soon.
    headers = {"Retry-After": str(math.ceil(error.retry_after))} if error.retry_after else None
    return error_response(
        status,
        "UpstreamError",
        f"{error.service} {error.operation}: {error.upstream_message}",
        headers=headers,
        upstreamStatus=error.status,
        upstreamCode=error.code,
        requestId=error.request_id,
    )


def _validation_summary(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "body"
        problems.append(f"{where}: {item['msg']}")
    return "invalid request: " + "; ".join(problems)
