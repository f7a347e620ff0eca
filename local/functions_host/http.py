"""HTTP triggers and the admin API, as an ASGI app: routes, methods and keys as Azure applies them."""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import azure.functions as func
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .config import FunctionSpec, HostConfig
from .invocation import continue_trace, invoke

log = logging.getLogger("Host.Http")


@dataclass(frozen=True)
class HttpRoute:
    function: FunctionSpec
    pattern: re.Pattern[str]
    methods: frozenset[str]
    auth_level: str


def compile_route(template: str) -> re.Pattern[str]:
    """Azure route templates: `{name}`, `{name:int}`, `{name?}` and `{*rest}`."""
    pattern = ""
    for part in re.split(r"(\{[^}]+\})", template.strip("/")):
        if not part.startswith("{"):
            pattern += re.escape(part)
            continue
        inner = part[1:-1]
        catch_all = inner.startswith("*")
        optional = inner.endswith("?")
        name, _, constraint = inner.strip("*?").partition(":")
        regex = ".*" if catch_all else "[0-9]+" if constraint == "int" else "[^/]+"
        if optional and pattern.endswith("/"):
            # ASP.NET routing, as Azure applies it: an omitted optional last segment takes its
            # separator with it (`console/{file?}` matches `console`).
            pattern = pattern[:-1] + f"(?:/(?P<{name}>{regex}))?"
            continue
        pattern += f"(?P<{name}>{regex})" + ("?" if optional else "")
    return re.compile(f"{pattern}/?", re.IGNORECASE)


def http_routes(config: HostConfig) -> list[HttpRoute]:
    routes = []
    for function in config.functions:
        if function.trigger_type != "httpTrigger" or config.is_disabled(function.name):
            continue
        trigger = function.trigger
        routes.append(
            HttpRoute(
                function=function,
                pattern=compile_route(trigger.get("route") or function.name),
                methods=frozenset(m.upper() for m in trigger.get("methods") or ["GET", "POST"]),
                auth_level=str(trigger.get("authLevel", "FUNCTION")).lower(),
            )
        )
    # Literal segments win over parameters, as in ASP.NET routing.
    routes.sort(key=lambda r: r.pattern.pattern.count("(?P<"))
    return routes


def _presented_key(request: Request) -> str:
    return request.headers.get("x-functions-key") or request.query_params.get("code") or ""


def _key_allows(config: HostConfig, auth_level: str, key: str) -> bool:
    if auth_level == "anonymous":
        return True
    allowed = [config.master_key] if auth_level == "admin" else [config.function_key, config.master_key]
    return any(hmac.compare_digest(key.encode(), candidate.encode()) for candidate in allowed)


def _to_functions_request(request: Request, body: bytes, route_params: dict[str, str]) -> func.HttpRequest:
    return func.HttpRequest(
        method=request.method,
        url=str(request.url),
        headers=dict(request.headers),
        params=dict(request.query_params),
        route_params=route_params,
        body=body,
    )


def _to_starlette_response(response: func.HttpResponse) -> Response:
    headers = dict(response.headers)
    if response.mimetype and not any(k.lower() == "content-type" for k in headers):
        content_type = response.mimetype
        if response.charset and response.mimetype.startswith(("text/", "application/json")):
            content_type += f"; charset={response.charset}"
        headers["Content-Type"] = content_type
    return Response(response.get_body(), status_code=response.status_code, headers=headers)


def create_http_app(config: HostConfig, run_non_http: Callable[[str, str], bool], lifespan=None) -> Starlette:
    routes = http_routes(config)
    prefix = f"/{config.route_prefix}/" if config.route_prefix else "/"

    async def dispatch(request: Request) -> Response:
        path = request.url.path
        if not path.startswith(prefix):
            return Response(status_code=404)
        relative = path[len(prefix) :]
        for route in routes:
            match = route.pattern.fullmatch(relative)
            if match is None or request.method not in route.methods:
                continue
            if not _key_allows(config, route.auth_level, _presented_key(request)):
                return Response(status_code=401)
            params = {k: v for k, v in match.groupdict().items() if v is not None}
            functions_request = _to_functions_request(request, await request.body(), params)
            try:
                # Like the host, continue the caller's W3C trace when the request carries one.
                trace = continue_trace(
                    request.headers.get("traceparent"), request.headers.get("tracestate", "")
                )
                response = await run_in_threadpool(invoke, route.function, functions_request, trace=trace)
            except Exception:
                return Response(status_code=500)
            return _to_starlette_response(response)
        return Response(status_code=404)

    async def admin_invoke(request: Request) -> Response:
        """POST /admin/functions/{name} {"input": "..."}: run a non-HTTP function now (master key)."""
        if not _key_allows(config, "admin", _presented_key(request)):
            return Response(status_code=401)
        try:
            body = await request.json()
        except ValueError:
            body = {}
        payload = body.get("input", "") if isinstance(body, dict) else ""
        if not run_non_http(request.path_params["name"], str(payload)):
            return JSONResponse({"error": "no such non-HTTP function"}, status_code=404)
        return Response(status_code=202)

    async def host_status(request: Request) -> Response:
        if not _key_allows(config, "admin", _presented_key(request)):
            return Response(status_code=401)
        return JSONResponse({"state": "Running", "functions": [f.name for f in config.functions]})

    return Starlette(
        routes=[
            Route("/admin/functions/{name}", admin_invoke, methods=["POST"]),
            Route("/admin/host/status", host_status, methods=["GET"]),
            Route(
                "/{path:path}", dispatch, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
            ),
        ],
        lifespan=lifespan,
    )
