"""The Microsoft 365 emulator's HTTP server: SharePoint REST, Microsoft Graph, connector receivers,
Entra ID's login endpoints, and the `/_emulator/` control surface, for a home tenant and any
guest tenants added (local/m365/directory.py).

python -m local.m365.server --port 7072 --delivery-interval 60 --retry-interval 300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware

from . import control, login
from .directory import Directory, TenantRouting
from .graph import teams_control
from .graph.delivery import DeliveryPolicy, GraphDeliverer
from .graph.urls import graph_routes
from .receivers.routes import routes as receiver_routes
from .sharepoint.delivery import Deliverer
from .sharepoint.paths import SharePointPaths
from .sharepoint.urls import routes as sharepoint_routes
from .tenant import Tenant


def create_app(
    *,
    delivery_interval: float = 60.0,
    retry_interval: float = 300.0,
    graph_policy: DeliveryPolicy | None = None,
    tenant_id: str | None = None,
) -> Starlette:
    tenant = Tenant(tenant_id)
    directory = Directory(tenant)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        async with httpx.AsyncClient() as http:
            app.state.http = http
            tasks: list[asyncio.Task[None]] = []
            app.state.deliverers = {}

            def serve(hosted: Tenant) -> None:
                """Each tenant delivers its own subscriptions' notifications."""
                deliverer = Deliverer(hosted, http, interval=delivery_interval, retry_interval=retry_interval)
                graph_deliverer = GraphDeliverer(
                    hosted, http, graph_policy or DeliveryPolicy(interval=delivery_interval)
                )
                app.state.deliverers[hosted.tenant_id] = (deliverer, graph_deliverer)
                tasks.extend(
                    [asyncio.create_task(deliverer.run()), asyncio.create_task(graph_deliverer.run())]
                )

            for hosted in directory.tenants.values():
                serve(hosted)
            directory.on_added.append(serve)
            try:
                yield
            finally:
                directory.on_added.remove(serve)
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app = Starlette(
        routes=[
            *login.routes,
            *control.routes,
            *teams_control.routes,
            *receiver_routes,
            *graph_routes,
            *sharepoint_routes,
        ],
        middleware=[Middleware(TenantRouting), Middleware(SharePointPaths)],
        lifespan=lifespan,
    )
    app.state.tenant = tenant
    app.state.directory = directory
    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Microsoft 365 (SharePoint Online) emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("M365_EMULATOR_PORT", "7072")))
    parser.add_argument("--tenant-id", default=None, help="the home tenant's id (default: a new GUID)")
    for flag, variable, default, meaning in (
        (
            "--delivery-interval",
            "DELIVERY_INTERVAL",
            "60",
            "between notification delivery rounds (SharePoint: about 60)",
        ),
        (
            "--retry-interval",
            "RETRY_INTERVAL",
            "300",
            "before a failed delivery is tried again (SharePoint: 300)",
        ),
        (
            "--graph-retry-base",
            "GRAPH_RETRY_BASE",
            "60",
            "before Graph's first retry of a failed delivery; doubles",
        ),
        (
            "--graph-timeout",
            "GRAPH_TIMEOUT",
            "3",
            "Graph waits for a first attempt's 2xx (2026: 3); later is slow",
        ),
        (
            "--graph-slow-delay",
            "GRAPH_SLOW_DELAY",
            "600",
            "a slow endpoint's new notifications come late (2026: 600)",
        ),
    ):
        default_seconds = float(os.environ.get(f"M365_EMULATOR_{variable}", default))
        parser.add_argument(flag, type=float, default=default_seconds, help=f"seconds {meaning}")
    args = parser.parse_args()
    policy = DeliveryPolicy(
        interval=args.delivery_interval,
        retry_base=args.graph_retry_base,
        timeout=args.graph_timeout,
        slow_delay=args.graph_slow_delay,
    )
    app = create_app(
        delivery_interval=args.delivery_interval,
        retry_interval=args.retry_interval,
        graph_policy=policy,
        tenant_id=args.tenant_id,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
