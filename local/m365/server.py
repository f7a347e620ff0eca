"""The Microsoft 365 emulator's HTTP server: SharePoint REST plus the `/_emulator/` control surface.

python -m local.m365.server --port 7072 --delivery-interval 60 --retry-interval 300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import control, errors, graph, receivers, sharepoint
from .delivery import Deliverer
from .errors import SharePointError
from .state import SharePointTenant

Endpoint = Callable[[Request], Awaitable[Response]]

# (route name, method) -> the operation name that counters and injected faults use.
_OPERATIONS = {
    ("create_list", "POST"): "CreateList",
    ("get_list", "GET"): "GetList",
    ("items", "GET"): "GetItems",
    ("items", "POST"): "AddItem",
    ("item", "GET"): "GetItem",
    ("item", "PATCH"): "UpdateItem",
    ("item", "POST"): "UpdateItem",
    ("item", "DELETE"): "DeleteItem",
    ("recycle_item", "POST"): "RecycleItem",
    ("restore_recycled", "POST"): "Restore",
    ("get_changes", "POST"): "GetChanges",
    ("subscriptions", "GET"): "ListSubscriptions",
    ("subscriptions", "POST"): "CreateSubscription",
    ("subscription", "GET"): "GetSubscription",
    ("subscription", "PATCH"): "UpdateSubscription",
    ("subscription", "DELETE"): "DeleteSubscription",
    ("get_lists", "GET"): "GetLists",
    ("add_file", "POST"): "AddFile",
    ("file", "GET"): "GetFile",
    ("file", "POST"): "DeleteFile",
    ("file", "DELETE"): "DeleteFile",
    ("file_item", "GET"): "GetFileItem",
    ("file_item", "POST"): "UpdateFileItem",
    ("file_item", "PATCH"): "UpdateFileItem",
    ("file_action", "POST"): "FileAction",
}


def _sharepoint_endpoint(name: str, endpoint: Endpoint) -> Endpoint:
    """What every SharePoint call goes through: bearer token, counters, injected faults, errors."""

    async def handle(request: Request) -> Response:
        tenant: SharePointTenant = request.app.state.tenant
        request_id = str(uuid.uuid4())
        operation = _OPERATIONS.get((name, request.method), name)
        tenant.calls[operation] += 1
        app_id = sharepoint.authorized_app(request)
        if app_id is None:
            return JSONResponse(
                {"error_description": "Invalid JWT token. The token is missing or has expired."},
                status_code=401,
                headers={
                    "WWW-Authenticate": (
                        'Bearer realm="emulator", client_id="00000003-0000-0ff1-ce00-000000000000"'
                    ),
                    "request-id": request_id,
                },
            )
        fault = tenant.take_fault("sharepoint", operation, request.url.path, app_id)
        if fault is not None and fault.status == 200:
            await asyncio.sleep(fault.delay_seconds)
        elif fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return errors.error_response(
                SharePointError(
                    fault.status,
                    errors.THROTTLED,
                    "The request has been throttled (injected by the emulator).",
                    headers,
                ),
                request_id,
                verbose=sharepoint.wants_verbose(request),
            )
        request.state.app_id = app_id
        try:
            response = await endpoint(request)
        except SharePointError as error:
            return errors.error_response(error, request_id, verbose=sharepoint.wants_verbose(request))
        response.headers["request-id"] = request_id
        response.headers["SPRequestGuid"] = request_id
        return response

    return handle


def create_app(
    *,
    delivery_interval: float = 60.0,
    retry_interval: float = 300.0,
    graph_policy: graph.DeliveryPolicy | None = None,
) -> Starlette:
    tenant = SharePointTenant()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        async with httpx.AsyncClient() as http:
            app.state.http = http
            app.state.deliverer = Deliverer(
                tenant, http, interval=delivery_interval, retry_interval=retry_interval
            )
            app.state.graph_deliverer = graph.GraphDeliverer(
                tenant, http, graph_policy or graph.DeliveryPolicy(interval=delivery_interval)
            )
            tasks = [
                asyncio.create_task(app.state.deliverer.run()),
                asyncio.create_task(app.state.graph_deliverer.run()),
            ]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    routes = [
        Route(
            route.path,
            _sharepoint_endpoint(route.name, route.endpoint),
            methods=route.methods,
            name=route.name,
        )
        for route in sharepoint.routes
    ]
    app = Starlette(
        routes=[*control.routes, *receivers.routes, *graph.graph_routes, *routes], lifespan=lifespan
    )
    app.state.tenant = tenant
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Microsoft 365 (SharePoint Online) emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("M365_EMULATOR_PORT", "7072")))
    parser.add_argument(
        "--delivery-interval",
        type=float,
        default=float(os.environ.get("M365_EMULATOR_DELIVERY_INTERVAL", "60")),
        help="seconds between notification delivery rounds (SharePoint: about 60)",
    )
    parser.add_argument(
        "--retry-interval",
        type=float,
        default=float(os.environ.get("M365_EMULATOR_RETRY_INTERVAL", "300")),
        help="seconds before a failed delivery is tried again (SharePoint: 300)",
    )
    parser.add_argument(
        "--graph-retry-base",
        type=float,
        default=float(os.environ.get("M365_EMULATOR_GRAPH_RETRY_BASE", "60")),
        help="seconds before Graph's first retry of a failed delivery; doubles after each",
    )
    parser.add_argument(
        "--graph-slow-seconds",
        type=float,
        default=float(os.environ.get("M365_EMULATOR_GRAPH_SLOW_SECONDS", "10")),
        help="an answer slower than this counts towards Graph's slow/drop thresholds",
    )
    args = parser.parse_args()
    policy = graph.DeliveryPolicy(
        interval=args.delivery_interval, retry_base=args.graph_retry_base, timeout=args.graph_slow_seconds
    )
    app = create_app(
        delivery_interval=args.delivery_interval, retry_interval=args.retry_interval, graph_policy=policy
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
