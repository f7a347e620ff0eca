"""`/_emulator/`: what tests and the demo use to steer the emulator. Not part of Microsoft 365."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .directory import tenant_of
from .faults import KNOWN_OPERATIONS, Fault
from .tenant import Tenant
from .tokens import DEFAULT_APP_ID, TOKEN_LIFETIME_SECONDS


def _tenant(request: Request) -> Tenant:
    return tenant_of(request)


async def issue_token(request: Request) -> Response:
    """Stands in for Entra ID's client-credentials grant; `{"client_id": ...}` names the app
    (subscriptions belong to the app that created them); `{"user": "ann@contoso.com"}` makes it a
    delegated token, whose SharePoint writes name that user as their editor."""
    body = await _optional_json(request)
    user = body.get("user")
    if user is not None and not (isinstance(user, str) and "@" in user and len(user) <= 256):
        return JSONResponse({"error": "user must be a user principal name, as ann@contoso.com"}, 400)
    app_id = str(body.get("client_id") or DEFAULT_APP_ID)
    token = _tenant(request).tokens.issue(time.time(), app_id, user.lower() if user else None)
    return JSONResponse({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME_SECONDS, "access_token": token})


async def migrated_list(request: Request) -> Response:
    """`{"site", "title", "id"}`: a list that keeps the id it had elsewhere, as a migration tool
    or a site template copied between tenants leaves it."""
    body = await request.json()
    created = _tenant(request).sharepoint.create_list(
        str(body["site"]), str(body["title"]), int(body.get("baseTemplate", 100)), str(body["id"]).lower()
    )
    return JSONResponse({"Id": created.id}, 201)


async def faults(request: Request) -> Response:
    """POST {"operation": "GetChanges" | "*", "status": 429, "retryAfter": 1, "times": 1,
    "pathContains": "<list id>", "after": 0} (pathContains optional; "after": N matching requests
    are answered normally first); status 200 with "delaySeconds": N answers normally, N seconds
    late."""
    tenant = _tenant(request)
    if request.method == "DELETE":
        tenant.faults.clear()
        return Response(status_code=204)
    body = await request.json()
    operation = str(body.get("operation", "*"))
    if operation != "*" and operation not in KNOWN_OPERATIONS:
        known = ", ".join(sorted(KNOWN_OPERATIONS))
        return JSONResponse({"error": f"no operation {operation!r}; known: {known}"}, 400)
    fault = Fault(
        status=int(body.get("status", 503)),
        retry_after=body.get("retryAfter"),
        remaining=int(body.get("times", 1)),
        operation=operation,
        path_contains=str(body.get("pathContains", "")),
        delay_seconds=float(body.get("delaySeconds", 0)),
        after=int(body.get("after", 0)),
    )
    tenant.faults.add(fault)
    return JSONResponse({"operation": fault.operation, "status": fault.status, "times": fault.remaining}, 201)


async def clock(request: Request) -> Response:
    """POST {"advanceSeconds": N} moves the emulator's clock forward; {"offsetSeconds": N} sets
    its offset from real time (0 puts it back); GET reads it."""
    tenant = _tenant(request)
    if request.method == "POST":
        body = await _optional_json(request)
        if "offsetSeconds" in body:
            tenant.clock.offset = timedelta(seconds=float(body["offsetSeconds"]))
        tenant.clock.advance(float(body.get("advanceSeconds", 0)))
    return JSONResponse(
        {"now": tenant.clock.now().isoformat(), "offsetSeconds": tenant.clock.offset.total_seconds()}
    )


async def drop_subscription(request: Request) -> Response:
    """Delete a subscription behind the app's back, as an admin or an expiry would."""
    tenant = _tenant(request)
    found = tenant.sharepoint.find_subscription(request.path_params["subscription_id"])
    if found is None:
        return JSONResponse({"error": "no such subscription"}, 404)
    del found[1].subscriptions[found[2].id]
    return Response(status_code=204)


async def subscriptions(request: Request) -> Response:
    """Every subscription in the tenant, clientState included, for tests to inspect."""
    sharepoint = _tenant(request).sharepoint
    for site in sharepoint.sites.values():
        for sp_list in site.lists.values():
            sharepoint.expire_subscriptions(sp_list)
    value = [
        {**s.to_json(), "siteUrl": site.path}
        for site in sharepoint.sites.values()
        for sp_list in site.lists.values()
        for s in sp_list.subscriptions.values()
    ]
    return JSONResponse({"value": value})


async def counters(request: Request) -> Response:
    tenant = _tenant(request)
    return JSONResponse(
        {
            "calls": dict(tenant.calls),
            "delivery": dict(tenant.delivery),
            "pendingNotifications": len(tenant.sharepoint.pending),
            "earlyRetries": tenant.faults.early_retries,
            "requestsWhileThrottled": tenant.faults.requests_while_throttled,
        }
    )


async def deliver(request: Request) -> Response:
    """Deliver every pending notification now instead of at the next round."""
    return JSONResponse(
        await request.app.state.deliverers[_tenant(request).tenant_id][0].deliver_due(force=True)
    )


async def withhold(request: Request) -> Response:
    """POST {"subscriptionId": "…", "withhold": true}: that subscription's notifications are no
    longer sent (false sends them again; what was withheld is gone, as Graph drops and SharePoint
    gives up). Counted as `withheld`."""
    body = await _optional_json(request)
    withheld = _tenant(request).withheld
    subscription_id = str(body.get("subscriptionId") or "")
    if body.get("withhold", True):
        withheld.add(subscription_id)
    else:
        withheld.discard(subscription_id)
    return JSONResponse({"withheld": sorted(withheld)})


async def reset(request: Request) -> Response:
    """Forget all state (sites, lists, changes, subscriptions, faults, counters, quirks)."""
    from .receivers.routes import forget_all

    _tenant(request).reset()
    forget_all()
    return Response(status_code=204)


async def quirks(request: Request) -> Response:
    """POST {"acceptExpiredChangeTokens": true} or {"omitChangeEditors": true}: behave like
    SharePoint Online's known bugs."""
    quirks = _tenant(request).sharepoint.quirks
    if request.method == "POST":
        body = await _optional_json(request)
        if "acceptExpiredChangeTokens" in body:
            quirks.accept_expired_change_tokens = bool(body["acceptExpiredChangeTokens"])
        if "omitChangeEditors" in body:
            quirks.omit_change_editors = bool(body["omitChangeEditors"])
    return JSONResponse(
        {
            "acceptExpiredChangeTokens": quirks.accept_expired_change_tokens,
            "omitChangeEditors": quirks.omit_change_editors,
        }
    )


async def _optional_json(request: Request) -> dict:
    raw = await request.body()
    if not raw:
        return {}
    body = json.loads(raw)
    return body if isinstance(body, dict) else {}


async def graph_lifecycle(request: Request) -> Response:
    """POST {"subscriptionId", "lifecycleEvent"}: Graph sends that lifecycle notification now
    (to the subscription's lifecycleNotificationUrl) and applies it."""
    from .graph.delivery import lifecycle
    from .graph.errors import GraphError, graph_error_response

    tenant = _tenant(request)
    body = await _optional_json(request)
    found = tenant.graph.subscriptions.get(str(body.get("subscriptionId")))
    if found is None:
        return JSONResponse({"error": "no such Graph subscription"}, 404)
    try:
        entry = lifecycle(tenant.graph, found, str(body.get("lifecycleEvent")))
    except GraphError as error:
        return graph_error_response(error, "emulator")
    if not found.lifecycle_url:
        return JSONResponse({"sent": False, "reason": "no lifecycleNotificationUrl"}, 200)
    deliverer = request.app.state.deliverers[_tenant(request).tenant_id][1]
    delivered = await deliverer.post(found.lifecycle_url, [entry], deliverer.policy.timeout)
    return JSONResponse({"sent": True, "delivered": delivered})


async def graph_expire_delta_tokens(request: Request) -> Response:
    """Every delta and skip link issued so far is refused from now on: 410 Gone with a Location;
    for Outlook, `{"outlookStatus": 400, "outlookCode": "syncStateNotFound"}` answers that instead,
    without a Location, as an expired Outlook token may."""
    graph = _tenant(request).graph
    body = await _optional_json(request)
    graph.outlook_expiry = (
        int(body.get("outlookStatus", 410)),
        str(body.get("outlookCode", "resyncRequired")),
    )
    graph.delta_generation += 1
    return Response(status_code=204)


async def graph_delay(request: Request) -> Response:
    """POST {"seconds": N, "subscriptionId": "…"}: Graph holds that subscription's new notifications
    back for N seconds (without subscriptionId: every subscription's; 0 ends it). Graph may deliver
    a drive or list notification up to 6 hours late."""
    body = await _optional_json(request)
    delays = _tenant(request).graph.notification_delays
    key = str(body.get("subscriptionId") or "*")
    seconds = float(body.get("seconds", 0))
    if seconds > 0:
        delays[key] = seconds
    else:
        delays.pop(key, None)
    return JSONResponse({"subscriptionId": key, "seconds": seconds})


async def graph_subscriptions(request: Request) -> Response:
    """Every Graph subscription, clientState included, for tests to inspect."""
    return JSONResponse(
        {
            "value": [
                s.to_json() | {"needsReauthorization": s.needs_reauthorization}
                for s in _tenant(request).graph.subscriptions.values()
            ]
        }
    )


async def graph_deliver(request: Request) -> Response:
    return JSONResponse(
        await request.app.state.deliverers[_tenant(request).tenant_id][1].deliver_due(force=True)
    )


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


routes = [
    Route("/_emulator/token", issue_token, methods=["POST"]),
    Route("/_emulator/lists", migrated_list, methods=["POST"]),
    Route("/_emulator/faults", faults, methods=["POST", "DELETE"]),
    Route("/_emulator/clock", clock, methods=["GET", "POST"]),
    Route("/_emulator/subscriptions", subscriptions, methods=["GET"]),
    Route("/_emulator/subscriptions/{subscription_id}", drop_subscription, methods=["DELETE"]),
    Route("/_emulator/counters", counters, methods=["GET"]),
    Route("/_emulator/deliver", deliver, methods=["POST"]),
    Route("/_emulator/health", health, methods=["GET"]),
    Route("/_emulator/reset", reset, methods=["POST"]),
    Route("/_emulator/withhold", withhold, methods=["POST"]),
    Route("/_emulator/graph/lifecycle", graph_lifecycle, methods=["POST"]),
    Route("/_emulator/graph/expire-delta-tokens", graph_expire_delta_tokens, methods=["POST"]),
    Route("/_emulator/graph/subscriptions", graph_subscriptions, methods=["GET"]),
    Route("/_emulator/graph/delay", graph_delay, methods=["POST"]),
    Route("/_emulator/graph/deliver", graph_deliver, methods=["POST"]),
    Route("/_emulator/quirks", quirks, methods=["GET", "POST"]),
]
