"""Graph's change-notification subscriptions: create (with both URLs validated), read, renew,
reauthorize, delete, under Graph's rules."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..directory import tenant_of
from .errors import GraphError, bad_request, not_found
from .http import app_id_of, body_of, graph_of, now_of
from .model import CHANGE_TYPES, CLIENT_STATE_MAX, GraphSubscription
from .rules import check_https, expiration_of, expire_subscriptions, watched
from .teams_rules import check_teams_subscription, lifetime_kind, patch_certificate, rich_fields

VALIDATION_TIMEOUT_SECONDS = 10.0
# Graph (2026-03): a reauthorize and a PATCH must never reach one subscription within this.
REAUTHORIZE_SPACING = timedelta(minutes=10)


async def subscriptions(request: Request) -> Response:
    graph = graph_of(request)
    if request.method == "GET":
        own = [s.to_json() for s in graph.subscriptions.values() if s.app_id == app_id_of(request)]
        return JSONResponse({"value": own})
    body = await body_of(request)
    now = now_of(request)
    for required in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
        if not isinstance(body.get(required), str) or not body[required]:
            raise bad_request(f"Required property '{required}' is missing.", "InvalidRequest")
    target = watched(graph, body["resource"], now)
    change_types = tuple(t.strip() for t in body["changeType"].split(","))
    if (
        not change_types
        or any(t not in CHANGE_TYPES for t in change_types)
        or len(set(change_types)) != len(change_types)
    ):
        raise bad_request(f"Invalid changeType '{body['changeType']}'.", "ExtensionError")
    if target.kind == "driveItem" and change_types != ("updated",):
        raise bad_request("The changeType for driveItem subscriptions must be 'updated'.", "ExtensionError")
    client_state = body.get("clientState")
    if client_state is not None and (
        not isinstance(client_state, str) or len(client_state) > CLIENT_STATE_MAX
    ):
        raise bad_request(f"clientState must be at most {CLIENT_STATE_MAX} characters.", "InvalidRequest")
    for name in ("notificationUrl", "lifecycleNotificationUrl"):
        if body.get(name) is not None:
            check_https(name, body[name])
    lifetime = lifetime_kind(body) if target.kind == "chatMessage" else target.kind
    expiration = expiration_of(body["expirationDateTime"], lifetime, now)
    if target.kind == "chatMessage":
        check_teams_subscription(graph, target, body, app_id_of(request), expiration, now)
    elif body.get("includeResourceData") is True and target.kind == "driveItem":
        raise bad_request(
            "includeResourceData is not supported for driveItem subscriptions.", "InvalidRequest"
        )
    for existing in graph.subscriptions.values():
        if (existing.resource.strip("/").lower(), existing.change_types, existing.notification_url) == (
            body["resource"].strip("/").lower(),
            change_types,
            body["notificationUrl"],
        ) and existing.app_id == app_id_of(request):
            raise GraphError(
                409,
                "Conflict",
                "A subscription with the same resource, changeType and notificationUrl already exists.",
            )
    await _validate(request, body["notificationUrl"])
    if body.get("lifecycleNotificationUrl"):
        await _validate(request, body["lifecycleNotificationUrl"])
    subscription = GraphSubscription(
        id=str(uuid.uuid4()),
        resource=body["resource"],
        kind=target.kind,
        change_types=change_types,
        notification_url=body["notificationUrl"],
        lifecycle_url=body.get("lifecycleNotificationUrl"),
        expiration=expiration,
        client_state=client_state,
        app_id=app_id_of(request),
        user_id=target.user.id if target.user else "",
        container=target.container,
        **(rich_fields(body) if target.kind == "chatMessage" else {}),
    )
    graph.subscriptions[subscription.id] = subscription
    return JSONResponse(subscription.to_json(), status_code=201)


async def subscription(request: Request) -> Response:
    graph = graph_of(request)
    found = _own_subscription(request)
    if request.method == "GET":
        return JSONResponse(found.to_json())
    if request.method == "DELETE":
        del graph.subscriptions[found.id]
        return Response(status_code=204)
    body = await body_of(request)
    if "expirationDateTime" not in body:
        raise bad_request("Only expirationDateTime can be updated.", "InvalidRequest")
    patch_certificate(found, body)
    lifetime = (
        ("chatMessage" if found.include_resource_data else "chatMessageWithoutResourceData")
        if found.kind == "chatMessage"
        else found.kind
    )
    found.expiration = expiration_of(body["expirationDateTime"], lifetime, now_of(request))
    found.needs_reauthorization = False  # a renewing PATCH also reauthorizes
    found.last_patch = now_of(request)
    _count_reauthorize_beside_patch(request, found)
    return JSONResponse(found.to_json())


async def reauthorize(request: Request) -> Response:
    found = _own_subscription(request)
    found.needs_reauthorization = False
    found.last_reauthorize = now_of(request)
    _count_reauthorize_beside_patch(request, found)
    return Response(status_code=204)


def _count_reauthorize_beside_patch(request: Request, found: GraphSubscription) -> None:
    """Graph (2026-03): a reauthorize and a PATCH on one subscription within 10 minutes can leave
    it inconsistent. The emulator serves both, and counts each such pair for tests to check."""
    if (
        found.last_patch is not None
        and found.last_reauthorize is not None
        and abs(found.last_patch - found.last_reauthorize) < REAUTHORIZE_SPACING
    ):
        tenant_of(request).calls["ReauthorizeAndPatchWithin10Minutes"] += 1


def _own_subscription(request: Request) -> GraphSubscription:
    graph = graph_of(request)
    expire_subscriptions(graph, now_of(request))
    found = graph.subscriptions.get(request.path_params["subscription_id"])
    if found is None or found.app_id != app_id_of(request):
        raise not_found(f"The object '{request.path_params['subscription_id']}' doesn't exist.")
    return found


async def _validate(request: Request, url: str) -> None:
    """Graph POSTs `validationToken` (URL-encoded; it holds spaces and colons) with a text/plain
    body and needs the decoded token back: 200, text/plain, within 10 s."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    client: httpx.AsyncClient = request.app.state.http
    tenant_of(request).calls["GraphValidateNotificationUrl"] += 1
    try:
        answer = await client.post(
            url,
            params={"validationToken": token},
            content=b"",
            headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=VALIDATION_TIMEOUT_SECONDS,
        )
    except httpx.TimeoutException:
        raise bad_request("Subscription validation request timed out.", "InvalidRequest") from None
    except httpx.HTTPError:
        raise bad_request(
            "Subscription validation request failed. Notification endpoint must respond with "
            "200 OK to validation request.",
            "InvalidRequest",
        ) from None
    if (
        answer.status_code != 200
        or answer.text != token
        or not answer.headers.get("content-type", "").startswith("text/plain")
    ):
        raise bad_request(
            "Subscription validation request failed. Notification endpoint must respond with "
            "200 OK to validation request.",
            "InvalidRequest",
        )
