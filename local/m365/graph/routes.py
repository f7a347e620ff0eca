"""Microsoft Graph routes (`/v1.0/...`): OneDrive, Outlook mail and calendar, delta queries and
change-notification subscriptions.

    drives:    GET /users/{id}/drive, PUT /drives/{id}/root:/{path}:/content,
               PATCH|DELETE|GET /drives/{id}/items/{item}, GET /drives/{id}/root/delta
    messages:  POST /users/{id}/mailFolders('{folder}')/messages, PATCH|DELETE /users/{id}/messages/{m},
               GET /users/{id}/mailFolders('{folder}')/messages/delta
    events:    POST /users/{id}/events, PATCH|DELETE /users/{id}/events/{e},
               GET /users/{id}/calendarView/delta?startDateTime=…&endDateTime=…
    subscriptions: POST|GET /subscriptions, GET|PATCH|DELETE /subscriptions/{id},
               POST /subscriptions/{id}/reauthorize
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .delivery import notify
from .http import Endpoint, app_id_of, base_of, body_of, graph_endpoint, graph_of, now_of
from .rules import check_https, expiration_of, expire_subscriptions, watched
from .state import (
    CHANGE_TYPES,
    CLIENT_STATE_MAX,
    DEFAULT_PAGE_SIZE,
    GraphError,
    GraphSubscription,
    GraphTenant,
    Journal,
    bad_request,
    not_found,
)

VALIDATION_TIMEOUT_SECONDS = 10.0
REAUTHORIZE_SPACING = timedelta(minutes=10)


# --- OneDrive ---------------------------------------------------------------------------------


async def user_drive(request: Request) -> Response:
    user = graph_of(request).user(request.path_params["user"], now_of(request))
    return JSONResponse({"id": user.drive.id, "driveType": "business", "owner": {"user": {"id": user.id}}})


async def upload(request: Request) -> Response:
    graph = graph_of(request)
    drive = graph.drive(request.path_params["drive"])
    item = graph.put_file(drive, request.path_params["path"], await request.body(), now_of(request))
    notify(request, drive.owner, "drive", "updated", f"drives/{drive.id}/root", None)
    return JSONResponse(item.to_json(drive.id), status_code=201 if item.version == 1 else 200)


async def drive_item(request: Request) -> Response:
    graph = graph_of(request)
    drive = graph.drive(request.path_params["drive"])
    item_id = request.path_params["item"]
    if request.method == "GET":
        return JSONResponse(graph.drive_item(drive, item_id).to_json(drive.id))
    if request.method == "PATCH":
        item = graph.update_drive_item(drive, item_id, await body_of(request), now_of(request))
        notify(request, drive.owner, "drive", "updated", f"drives/{drive.id}/root", None)
        return JSONResponse(item.to_json(drive.id))
    graph.delete_drive_item(drive, item_id, now_of(request))
    notify(request, drive.owner, "drive", "updated", f"drives/{drive.id}/root", None)
    return Response(status_code=204)


async def drive_delta(request: Request) -> Response:
    graph = graph_of(request)
    drive = graph.drive(request.path_params["drive"])
    objects = {drive.root.id: drive.root, **drive.items}
    base = f"{base_of(request)}/drives/{drive.id}/root/delta"
    size = int(request.query_params.get("$top", DEFAULT_PAGE_SIZE))

    def render(object_id: str) -> dict[str, Any]:
        return objects[object_id].to_json(drive.id)

    return _delta(
        request, graph, f"drive:{drive.id}", objects, drive.journal, base, size, render, param="token"
    )


# --- Outlook ----------------------------------------------------------------------------------


def _folder(request: Request) -> str:
    return (request.path_params.get("folder") or "").strip("'").lower()


async def folder_messages(request: Request) -> Response:
    graph = graph_of(request)
    user = graph.user(request.path_params["user"], now_of(request))
    message = graph.add_outlook_item(
        user, "message", _folder(request), await body_of(request), now_of(request)
    )
    path = f"Users/{user.id}/Messages/{message.id}"
    notify(request, user.id, message.container, "created", path, message)
    return JSONResponse(message.to_json(), status_code=201)


async def outlook_item(request: Request) -> Response:
    graph = graph_of(request)
    user = graph.user(request.path_params["user"], now_of(request))
    collection = request.path_params["collection"].lower()
    if collection not in ("messages", "events"):
        raise not_found()
    kind = "message" if collection == "messages" else "event"
    item_id = request.path_params["item"]
    if request.method == "GET":
        return JSONResponse(graph.outlook_item(user, kind, item_id).to_json())
    if request.method == "PATCH":
        item = graph.update_outlook_item(user, kind, item_id, await body_of(request), now_of(request))
        change = "updated"
    else:
        item = graph.delete_outlook_item(user, kind, item_id, now_of(request))
        change = "deleted"
    path = f"Users/{user.id}/{'Messages' if kind == 'message' else 'Events'}/{item.id}"
    notify(request, user.id, item.container, change, path, item)
    return JSONResponse(item.to_json()) if request.method == "PATCH" else Response(status_code=204)


async def events(request: Request) -> Response:
    graph = graph_of(request)
    user = graph.user(request.path_params["user"], now_of(request))
    body = await body_of(request)
    for edge in ("start", "end"):
        if not isinstance(body.get(edge), dict) or "dateTime" not in body[edge]:
            raise bad_request(
                f"The '{edge}' of an event is required: {{'dateTime', 'timeZone'}}.", "ErrorInvalidRequest"
            )
    event = graph.add_outlook_item(user, "event", "calendar", body, now_of(request))
    notify(request, user.id, "calendar", "created", f"Users/{user.id}/Events/{event.id}", event)
    return JSONResponse(event.to_json(), status_code=201)


async def messages_delta(request: Request) -> Response:
    graph = graph_of(request)
    user = graph.user(request.path_params["user"], now_of(request))
    folder = _folder(request)
    objects = {k: v for k, v in user.outlook.items() if v.kind == "message" and v.container == folder}
    base = str(request.url.replace(query=""))
    size = _max_page_size(request)
    return _delta(
        request,
        graph,
        f"messages:{user.id}:{folder}",
        objects,
        user.journal(folder),
        base,
        size,
        lambda object_id: objects[object_id].to_json(),
    )


async def calendar_delta(request: Request) -> Response:
    graph = graph_of(request)
    user = graph.user(request.path_params["user"], now_of(request))
    query = request.query_params
    fresh = "$deltatoken" not in query and "$skiptoken" not in query
    if fresh and ("startDateTime" not in query or "endDateTime" not in query):
        raise bad_request(
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime.",
            "ErrorInvalidParameter",
        )
    objects = {k: v for k, v in user.outlook.items() if v.kind == "event"}
    base = str(request.url.replace(query=""))
    window = {"start": query["startDateTime"], "end": query["endDateTime"]} if fresh else None
    return _delta(
        request,
        graph,
        f"events:{user.id}",
        objects,
        user.journal("calendar"),
        base,
        _max_page_size(request),
        lambda object_id: objects[object_id].to_json(),
        window=window,
    )


def _max_page_size(request: Request) -> int:
    match = re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("Prefer", ""))
    return int(match.group(1)) if match else DEFAULT_PAGE_SIZE


def _delta(
    request: Request,
    graph: GraphTenant,
    collection: str,
    objects: dict[str, Any],
    journal: Journal,
    base: str,
    size: int,
    render: Callable[[str], dict[str, Any]],
    param: str = "$deltatoken",
    window: dict[str, str] | None = None,
) -> Response:
    """One page of a delta round: `@odata.nextLink` while more follow, else `@odata.deltaLink`
    (never both). A link from before the tokens expired answers 410 with a `Location` to start
    over from (the same window, for a calendar)."""
    query = request.query_params
    link = query.get("$skiptoken") or query.get(param)
    state: dict[str, Any]
    if link == "latest":
        state = {"since": graph.sequence, "upto": graph.sequence, "offset": 0, "w": window}
        return JSONResponse({"value": [], "@odata.deltaLink": _link(graph, base, param, collection, state)})
    if link is None:
        state = {"since": None, "upto": graph.sequence, "offset": 0, "w": window}
    else:
        state = _read_link(graph, link, collection)
        if state["g"] != graph.delta_generation:
            restart = base + (
                f"?startDateTime={state['w']['start']}&endDateTime={state['w']['end']}"
                if state.get("w")
                else ""
            )
            status, code = graph.outlook_expiry if not collection.startswith("drive:") else (410, "")
            if status != 410:
                raise GraphError(status, code, "The sync state is not valid any more; start a new round.")
            raise GraphError(
                410,
                "resyncRequired",
                "Resync required. Replace any local items with the server's version (including deletes) if "
                "you're sure that the service was up to date with your local changes when you last sync'd.",
                {"Location": restart},
            )
        if "$skiptoken" not in query:  # a delta link: a new round from where the last one ended
            state = {"since": state["upto"], "upto": graph.sequence, "offset": 0, "w": state.get("w")}
    ids, more = graph.delta_page(objects, journal, state["since"], state["upto"], state["offset"], size)
    body: dict[str, Any] = {"value": [render(object_id) for object_id in ids]}
    if more:
        following = {**state, "offset": state["offset"] + size}
        body["@odata.nextLink"] = _link(graph, base, "$skiptoken", collection, following)
    else:
        body["@odata.deltaLink"] = _link(graph, base, param, collection, state)
    return JSONResponse(body)


def _link(graph: GraphTenant, base: str, param: str, collection: str, state: dict[str, Any]) -> str:
    raw = json.dumps({**state, "c": collection, "g": graph.delta_generation}).encode()
    return f"{base}?{param}={base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


def _read_link(graph: GraphTenant, token: str, collection: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(state, dict) or state.get("c") != collection:
            raise ValueError
        int(state["g"]), int(state["upto"]), int(state["offset"])
    except (ValueError, KeyError, TypeError):
        raise bad_request("The delta or skip token is not valid for this resource.", "badRequest") from None
    return state


# --- subscriptions ----------------------------------------------------------------------------


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
    expiration = expiration_of(body["expirationDateTime"], target.kind, now)
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
        user_id=target.user.id,
        container=target.container,
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
    found.expiration = expiration_of(body["expirationDateTime"], found.kind, now_of(request))
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
        request.app.state.tenant.calls["ReauthorizeAndPatchWithin10Minutes"] += 1


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
    request.app.state.tenant.calls["GraphValidateNotificationUrl"] += 1
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


V = "/v1.0"
routes: list[tuple[str, Endpoint, list[str], str]] = [
    (V + "/users/{user}/drive", user_drive, ["GET"], "GetDrive"),
    (V + "/drives/{drive}/root:/{path:path}:/content", upload, ["PUT"], "UploadDriveItem"),
    (V + "/drives/{drive}/root/delta", drive_delta, ["GET"], "DriveDelta"),
    (V + "/drives/{drive}/items/{item}", drive_item, ["GET", "PATCH", "DELETE"], "DriveItem"),
    (V + "/users/{user}/mailFolders('{folder}')/messages", folder_messages, ["POST"], "CreateMessage"),
    (V + "/users/{user}/mailFolders/{folder}/messages", folder_messages, ["POST"], "CreateMessage"),
    (V + "/users/{user}/mailFolders('{folder}')/messages/delta", messages_delta, ["GET"], "MessagesDelta"),
    (V + "/users/{user}/mailFolders/{folder}/messages/delta", messages_delta, ["GET"], "MessagesDelta"),
    (V + "/users/{user}/events", events, ["POST"], "CreateEvent"),
    (V + "/users/{user}/calendarView/delta", calendar_delta, ["GET"], "EventsDelta"),
    (V + "/users/{user}/{collection}/{item}", outlook_item, ["GET", "PATCH", "DELETE"], "OutlookItem"),
    (V + "/subscriptions", subscriptions, ["GET", "POST"], "GraphSubscriptions"),
    (V + "/subscriptions/{subscription_id}", subscription, ["GET", "PATCH", "DELETE"], "GraphSubscription"),
    (V + "/subscriptions/{subscription_id}/reauthorize", reauthorize, ["POST"], "Reauthorize"),
]


graph_routes = [
    Route(path, graph_endpoint(name, endpoint), methods=methods) for path, endpoint, methods, name in routes
]
