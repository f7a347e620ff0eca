"""What every SharePoint and Graph call goes through, in one place: a request id, the operation's
counter, the bearer token, an injected fault (status 200: answer normally, `delaySeconds` late),
and the service's own error body for whatever the route raises. Each service says how it answers
(its `Dialect`); the guard is the same."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from .directory import tenant_of
from .faults import KNOWN_OPERATIONS, Fault

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Dialect:
    """How one service answers: its error type and body, its 401, the error an injected fault
    becomes, the headers naming the request, and what it notes of an authorized caller."""

    service: str
    error: type[Exception]
    error_response: Callable[[Exception, Request, str], Response]
    unauthorized: Callable[[str], Response]
    injected: Callable[[Fault], Exception]
    request_headers: Callable[[str], dict[str, str]]
    authorized: Callable[[Request, str], None] = lambda request, app_id: None
    # Whether a token asked for this resource is one this service takes (its audience).
    takes_audience: Callable[[Request, str], bool] = lambda request, audience: True


def bearer_app(request: Request, dialect: Dialect | None = None) -> str | None:
    """The app the request's bearer token was issued to, or None (none, expired, another
    tenant's, or asked for another service than `dialect`'s)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    tokens = tenant_of(request).tokens
    app_id = tokens.app_of(token.strip(), time.time())
    audience = tokens.audience_of(token.strip())
    if app_id is not None and dialect is not None and audience is not None:
        return app_id if dialect.takes_audience(request, audience) else None
    return app_id


def guarded(
    dialect: Dialect, operations: set[str], operation_of: Callable[[Request], str], handler: Endpoint
) -> Endpoint:
    """`handler` behind the guard; `operations` are the names `operation_of` can give (the names
    a fault may target)."""
    KNOWN_OPERATIONS.update(operations)

    async def handle(request: Request) -> Response:
        tenant = tenant_of(request)
        request_id = str(uuid.uuid4())
        operation = operation_of(request)
        tenant.calls[operation] += 1
        app_id = bearer_app(request, dialect)
        if app_id is None:
            return dialect.unauthorized(request_id)
        fault = tenant.faults.take(dialect.service, operation, request.url.path, app_id)
        if fault is not None and fault.status == 200:
            await asyncio.sleep(fault.delay_seconds)
        elif fault is not None:
            return dialect.error_response(dialect.injected(fault), request, request_id)
        request.state.app_id = app_id
        dialect.authorized(request, app_id)
        try:
            response = await handler(request)
        except dialect.error as error:
            return dialect.error_response(error, request, request_id)
        response.headers.update(dialect.request_headers(request_id))
        return response

    return handle
