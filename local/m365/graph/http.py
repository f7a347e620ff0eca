"""What every Graph call goes through (bearer token, counters, injected faults, Graph's error
bodies), and how a Graph route reads its request."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..faults import KNOWN_OPERATIONS
from .state import GraphError, GraphTenant, bad_request

Endpoint = Callable[[Request], Awaitable[Response]]
WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    'client_id="00000003-0000-0000-c000-000000000000"'
)


def graph_error_response(error: GraphError, request_id: str) -> JSONResponse:
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }
    }
    return JSONResponse(body, status_code=error.status, headers={"request-id": request_id, **error.headers})


def graph_of(request: Request) -> GraphTenant:
    return request.app.state.tenant.graph


def now_of(request: Request) -> datetime:
    return request.app.state.tenant.clock.now()


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


def graph_endpoint(operation: str, endpoint: Endpoint) -> Endpoint:
    """Bearer token, counters, injected faults and Graph's error bodies for every Graph call."""
    KNOWN_OPERATIONS.add(operation)

    async def handle(request: Request) -> Response:
        tenant = request.app.state.tenant
        request_id = str(uuid.uuid4())
        tenant.calls[operation] += 1
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        app_id = tenant.tokens.app_of(token.strip(), time.time()) if scheme.lower() == "bearer" else None
        if app_id is None:
            # As Graph: the challenge names the authority and Graph's own app id.
            challenge = {"WWW-Authenticate": WWW_AUTHENTICATE}
            return graph_error_response(
                GraphError(
                    401, "InvalidAuthenticationToken", "Access token is empty or has expired.", challenge
                ),
                request_id,
            )
        fault = tenant.faults.take("graph", operation, request.url.path, app_id)
        if fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return graph_error_response(
                GraphError(
                    fault.status,
                    "TooManyRequests" if fault.status == 429 else "serviceNotAvailable",
                    "Injected by the emulator.",
                    headers,
                ),
                request_id,
            )
        request.state.app_id = app_id
        try:
            response = await endpoint(request)
        except GraphError as error:
            return graph_error_response(error, request_id)
        response.headers["request-id"] = request_id
        return response

    return handle
