"""List webhooks: `/subscriptions` of a list, and the validation call SharePoint makes to a
notification URL before it accepts one (5 s, the token echoed as text/plain)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response

from ..directory import tenant_of
from . import errors
from .errors import SharePointError
from .http import (
    api_url,
    app_id,
    entity,
    function_arguments,
    json_body,
    ok,
    quoted,
    resolve_list,
    state_of,
)
from .model import SpList, Subscription

VALIDATION_TIMEOUT_SECONDS = 5.0


# --- subscriptions -----------------------------------------------------------------------------


def _subscription_entity(request: Request, sp_list: SpList, subscription: Subscription) -> dict[str, Any]:
    uri = api_url(request, f"Web/Lists(guid'{sp_list.id}')/Subscriptions('{subscription.id}')")
    return entity(subscription.to_json(), "Microsoft.SharePoint.Webhooks.Subscription", uri)


async def subscriptions(request: Request) -> Response:
    """`GET`/`POST subscriptions`, and `POST subscriptions/Add` with the body in `parameters`."""
    tenant = state_of(request)
    sp_list = resolve_list(request)
    if request.method == "GET":
        tenant.expire_subscriptions(sp_list)
        own = [s for s in sp_list.subscriptions.values() if s.app_id == app_id(request)]
        return ok(request, {"value": [_subscription_entity(request, sp_list, s) for s in own]})
    body = await json_body(request)
    if request.url.path.endswith("/add"):
        parameters = body.get("parameters")
        if not isinstance(parameters, dict):
            raise SharePointError(400, errors.ARGUMENT, "The parameter parameters is required.")
        body = parameters
    notification_url, expiration, client_state = tenant.check_subscription_request(body)
    await _validate_notification_url(request, notification_url)
    subscription = tenant.add_subscription(
        sp_list, notification_url, expiration, client_state, app_id(request)
    )
    return ok(request, _subscription_entity(request, sp_list, subscription), 201)


async def subscription(request: Request) -> Response:
    tenant = state_of(request)
    sp_list = resolve_list(request)
    subscription_id = quoted(request, "subscription_id")
    if request.method == "GET":
        found = tenant.get_subscription(sp_list, subscription_id, app_id(request))
        return ok(request, _subscription_entity(request, sp_list, found))
    if request.method == "PATCH":
        tenant.renew_subscription(sp_list, subscription_id, await json_body(request), app_id(request))
        return Response(status_code=204)
    tenant.delete_subscription(sp_list, subscription_id, app_id(request))
    return Response(status_code=204)


async def remove_subscription(request: Request) -> Response:
    """`subscriptions/Remove('{id}')`: the function form of a delete."""
    arguments = request.path_params["arguments"]
    if arguments.startswith("'"):
        subscription_id = arguments[1:-1]
    else:
        subscription_id = function_arguments(arguments).get("subscriptionid", "")
    state_of(request).delete_subscription(resolve_list(request), subscription_id, app_id(request))
    return Response(status_code=200)


async def _validate_notification_url(request: Request, notification_url: str) -> None:
    """SharePoint calls the URL with a token and needs it echoed within five seconds."""
    token = str(uuid.uuid4())
    client: httpx.AsyncClient = request.app.state.http
    tenant_of(request).calls["ValidateNotificationUrl"] += 1
    try:
        answer = await client.post(
            notification_url,
            params={"validationtoken": token},
            content=b"",
            timeout=VALIDATION_TIMEOUT_SECONDS,
        )
    except httpx.HTTPError:
        raise errors.validation_failed(notification_url) from None
    if answer.status_code != 200 or answer.text != token:
        raise errors.validation_failed(notification_url)


# (path below `{site}/_api/web`, lower case as `paths.canonical_path` writes it, endpoint,
# methods, operation name)
