"""How a Graph route reads its request, and Graph's dialect of the guard every call goes through
(`local/m365/endpoint.py`)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..directory import tenant_of
from ..endpoint import Dialect, Endpoint, guarded
from ..faults import Fault
from .errors import WWW_AUTHENTICATE, GraphError, bad_request, graph_error_response
from .state import GraphTenant


def graph_of(request: Request) -> GraphTenant:
    return tenant_of(request).graph


def now_of(request: Request) -> datetime:
    return tenant_of(request).clock.now()


def app_id_of(request: Request) -> str:
    return request.state.app_id


async def body_of(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request("Unable to read JSON request payload.", "BadRequest") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", "BadRequest")
    return body


def base_of(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}/v1.0"


def _injected(fault: Fault) -> GraphError:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    code = "TooManyRequests" if fault.status == 429 else "serviceNotAvailable"
    return GraphError(fault.status, code, "Injected by the emulator.", headers)


def _unauthorized(request_id: str) -> Response:
    # As Graph: the challenge names the authority and Graph's own app id.
    error = GraphError(
        401,
        "InvalidAuthenticationToken",
        "Access token is empty or has expired.",
        {"WWW-Authenticate": WWW_AUTHENTICATE},
    )
    return graph_error_response(error, request_id)


GRAPH = Dialect(
    service="graph",
    error=GraphError,
    error_response=lambda error, request, request_id: graph_error_response(error, request_id),  # type: ignore[arg-type]
    unauthorized=_unauthorized,
    injected=_injected,
    request_headers=lambda request_id: {"request-id": request_id},
    # Graph's name, or the emulator's own root where the local stack points GRAPH_BASE_URL.
    takes_audience=lambda request, audience: (
        audience in ("https://graph.microsoft.com", f"{request.url.scheme}://{request.url.netloc}")
    ),
)


def graph_endpoint(operation: str, endpoint: Endpoint) -> Endpoint:
    """`endpoint` behind the guard every Graph call goes through, counted as `operation`."""
    return guarded(GRAPH, {operation}, lambda request: operation, endpoint)
