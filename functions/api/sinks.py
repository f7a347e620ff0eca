"""Management API, connectors (function key): a subscription's sinks, their tests, replays,
secrets, and turning them off and on. Operations that change a sink are audited under the
invocation id."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

import azure.functions as func

from ..responses import json_response
from .common import run

if TYPE_CHECKING:
    from ..core.services import Services

log = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.function_name("create_sink")
@bp.route(route="subscriptions/{id}/sinks", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def create_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return run(partial(_create_sink, invocation_id=context.invocation_id), req)


@bp.function_name("list_sinks")
@bp.route(route="subscriptions/{id}/sinks", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def list_sinks(req: func.HttpRequest) -> func.HttpResponse:
    return run(_list_sinks, req)


@bp.function_name("get_sink")
@bp.route(route="subscriptions/{id}/sinks/{sinkId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def get_sink(req: func.HttpRequest) -> func.HttpResponse:
    return run(_get_sink, req)


@bp.function_name("delete_sink")
@bp.route(route="subscriptions/{id}/sinks/{sinkId}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
def delete_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return run(partial(_delete_sink, invocation_id=context.invocation_id), req)


@bp.function_name("test_sink")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/test", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
def test_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return run(partial(_test_sink, invocation_id=context.invocation_id), req)


@bp.function_name("redeliver_sink")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/redeliver", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
def redeliver_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return run(partial(_redeliver_sink, invocation_id=context.invocation_id), req)


@bp.function_name("replay_sink")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
def replay_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return run(partial(_replay_sink, invocation_id=context.invocation_id), req)


@bp.function_name("enable_sink")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/enable", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
def enable_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return run(partial(_enable_sink, invocation_id=context.invocation_id), req)


@bp.function_name("disable_sink")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/disable", methods=["POST"], auth_level=func.AuthLevel.FUNCTION
)
def disable_sink(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return run(partial(_disable_sink, invocation_id=context.invocation_id), req)


@bp.function_name("rotate_sink_secret")
@bp.route(
    route="subscriptions/{id}/sinks/{sinkId}/rotate-secret",
    methods=["POST"],
    auth_level=func.AuthLevel.FUNCTION,
)
def rotate_sink_secret(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return run(partial(_rotate_sink_secret, invocation_id=context.invocation_id), req)


# --- the operations ----------------------------------------------------------------------------


def _create_sink(services: Services, req: func.HttpRequest, *, invocation_id: str) -> func.HttpResponse:
    from ..core.sinks.service import CreateSinkRequest

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
    outcome = services.sinks.send_sample(req.route_params["id"], req.route_params["sinkId"], invocation_id)
    body = {
        "delivered": outcome.ok,
        "endpointStatus": outcome.status,
        "elapsedMs": round(outcome.elapsed * 1000),
        "deadlinePassed": outcome.deadline_passed,
        "detail": outcome.detail,
    }
    return json_response(body)


def _redeliver_sink(services: Services, req: func.HttpRequest, *, invocation_id: str) -> func.HttpResponse:
    services.sinks.retry_now(req.route_params["id"], req.route_params["sinkId"], invocation_id)
    return json_response({"requeued": 1}, 202)


def _replay_sink(services: Services, req: func.HttpRequest, *, invocation_id: str) -> func.HttpResponse:
    from ..core.sinks.service import ReplayRequest

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
    from ..core.sinks.service import RotateSecretRequest

    request = RotateSecretRequest.model_validate_json(req.get_body() or b"{}")
    sink, secret = services.sinks.rotate_secret(
        req.route_params["id"], req.route_params["sinkId"], request, invocation_id
    )
    return json_response(
        {**services.sinks.view(sink), "secret": secret}, headers={"Cache-Control": "no-store"}
    )
