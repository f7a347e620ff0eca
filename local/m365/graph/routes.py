"""Microsoft Graph routes (`/v1.0/...`): OneDrive, Outlook mail and calendar and their delta queries
(paged in delta.py), and change-notification subscriptions (subscriptions.py).

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

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Route

from .batch import batch
from .delivery import notify
from .delta import DRIVE_ITEM_PROPERTIES, MESSAGE_PROPERTIES, delta_page, max_page_size
from .http import Endpoint, app_id_of, base_of, body_of, graph_endpoint, graph_of, now_of
from .state import (
    DEFAULT_PAGE_SIZE,
    Drive,
    DriveItem,
    GraphError,
    bad_request,
)
from .subscriptions import reauthorize, subscription, subscriptions

# --- OneDrive ---------------------------------------------------------------------------------


def _drive(request: Request) -> Drive:
    """The drive a route names: `/drives/{drive}` or a user's own, `/users/{user}/drive`."""
    graph = graph_of(request)
    if "drive" in request.path_params:
        return graph.drive(request.path_params["drive"])
    return graph.user(request.path_params["user"], now_of(request)).drive


async def user_drive(request: Request) -> Response:
    user = graph_of(request).user(request.path_params["user"], now_of(request))
    return JSONResponse({"id": user.drive.id, "driveType": "business", "owner": {"user": {"id": user.id}}})


async def upload(request: Request) -> Response:
    graph = graph_of(request)
    drive = _drive(request)
    item = graph.put_file(drive, request.path_params["path"], await request.body(), now_of(request))
    item.modified_by = app_id_of(request)
    notify(request, drive.owner, "drive", "updated", f"drives/{drive.id}/root", None)
    return JSONResponse(item.to_json(drive.id), status_code=201 if item.version == 1 else 200)


async def drive_item(request: Request) -> Response:
    graph = graph_of(request)
    drive = _drive(request)
    item_id = request.path_params["item"]
    if request.method == "GET":
        return JSONResponse(graph.drive_item(drive, item_id).to_json(drive.id))
    if request.method == "PATCH":
        item = graph.update_drive_item(drive, item_id, await body_of(request), now_of(request))
        item.modified_by = app_id_of(request)
        notify(request, drive.owner, "drive", "updated", f"drives/{drive.id}/root", None)
        return JSONResponse(item.to_json(drive.id))
    graph.delete_drive_item(drive, item_id, now_of(request))
    notify(request, drive.owner, "drive", "updated", f"drives/{drive.id}/root", None)
    return Response(status_code=204)


async def drive_delta(request: Request) -> Response:
    graph = graph_of(request)
    drive = _drive(request)
    objects = {drive.root.id: drive.root, **drive.items}
    base = f"{base_of(request)}/drives/{drive.id}/root/delta"
    size = int(request.query_params.get("$top", DEFAULT_PAGE_SIZE))

    def render(object_id: str) -> dict[str, Any]:
        return objects[object_id].to_json(drive.id, _parent_path(drive, objects[object_id]))

    return delta_page(
        request,
        graph,
        f"drive:{drive.id}",
        objects,
        drive.journal,
        base,
        size,
        render,
        param="token",
        selectable=DRIVE_ITEM_PROPERTIES,
    )


def _parent_path(drive: Drive, item: DriveItem) -> str | None:
    """`/drive/root:/Reports/2026`, percent-encoded, as Graph writes `parentReference.path`."""
    if item.parent_id is None:
        return None
    names: list[str] = []
    parent = drive.items.get(item.parent_id)
    while parent is not None and parent.parent_id is not None:
        names.insert(0, parent.name)
        parent = drive.items.get(parent.parent_id)
    return "/drive/root:" + "".join(f"/{quote(name)}" for name in names)


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


async def user_messages(request: Request) -> Response:
    """`POST /users/{id}/messages`: a new message in the user's Drafts folder, as Graph files it."""
    graph = graph_of(request)
    user = graph.user(request.path_params["user"], now_of(request))
    message = graph.add_outlook_item(user, "message", "drafts", await body_of(request), now_of(request))
    path = f"Users/{user.id}/Messages/{message.id}"
    notify(request, user.id, message.container, "created", path, message)
    return JSONResponse(message.to_json(), status_code=201)


async def unknown_segment(request: Request) -> Response:
    """What Graph answers for a path it has no resource for (JSON, as every Graph error), or for a
    method a resource does not take."""
    scope = {**request.scope, "method": request.method}
    if any(route.matches(scope)[0] is Match.PARTIAL for route in _known):
        raise GraphError(
            405, "BadRequest", f"The HTTP method '{request.method}' is not allowed for this resource."
        )
    segment = request.path_params["rest"].rstrip("/").rsplit("/", 1)[-1]
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


async def outlook_item(request: Request) -> Response:
    graph = graph_of(request)
    user = graph.user(request.path_params["user"], now_of(request))
    collection = request.path_params["collection"].lower()
    if collection not in ("messages", "events"):
        return await unknown_segment(request)
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
    size = max_page_size(request)
    return delta_page(
        request,
        graph,
        f"messages:{user.id}:{folder}",
        objects,
        user.journal(folder),
        base,
        size,
        lambda object_id: objects[object_id].to_json(),
        selectable=MESSAGE_PROPERTIES,
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
    return delta_page(
        request,
        graph,
        f"events:{user.id}",
        objects,
        user.journal("calendar"),
        base,
        max_page_size(request),
        lambda object_id: objects[object_id].to_json(),
        window=window,
    )


V = "/v1.0"
routes: list[tuple[str, Endpoint, list[str], str]] = [
    (V + "/users/{user}/drive", user_drive, ["GET"], "GetDrive"),
    # A drive by id or a user's own; an item path as `root:/{path}:` (the SDKs write it as an item
    # id, percent-encoded); delta as a path or as the function `delta()`.
    *[
        (V + prefix + suffix, endpoint, methods, name)
        for prefix in ("/drives/{drive}", "/users/{user}/drive")
        for suffix, endpoint, methods, name in (
            ("/root:/{path:path}:/content", upload, ["PUT"], "UploadDriveItem"),
            ("/items/root:/{path:path}:/content", upload, ["PUT"], "UploadDriveItem"),
            ("/root/delta", drive_delta, ["GET"], "DriveDelta"),
            ("/root/delta()", drive_delta, ["GET"], "DriveDelta"),
            ("/items/root/delta", drive_delta, ["GET"], "DriveDelta"),
            ("/items/root/delta()", drive_delta, ["GET"], "DriveDelta"),
            ("/items/{item}", drive_item, ["GET", "PATCH", "DELETE"], "DriveItem"),
        )
    ],
    (V + "/users/{user}/mailFolders('{folder}')/messages", folder_messages, ["POST"], "CreateMessage"),
    (V + "/users/{user}/mailFolders/{folder}/messages", folder_messages, ["POST"], "CreateMessage"),
    *[
        (V + folder + "/messages/" + delta, messages_delta, ["GET"], "MessagesDelta")
        for folder in ("/users/{user}/mailFolders('{folder}')", "/users/{user}/mailFolders/{folder}")
        for delta in ("delta", "delta()")
    ],
    (V + "/users/{user}/messages", user_messages, ["POST"], "CreateMessage"),
    (V + "/users/{user}/events", events, ["POST"], "CreateEvent"),
    (V + "/users/{user}/calendarView/delta", calendar_delta, ["GET"], "EventsDelta"),
    (V + "/users/{user}/calendarView/delta()", calendar_delta, ["GET"], "EventsDelta"),
    (V + "/users/{user}/{collection}/{item}", outlook_item, ["GET", "PATCH", "DELETE"], "OutlookItem"),
    (V + "/subscriptions", subscriptions, ["GET", "POST"], "GraphSubscriptions"),
    (V + "/subscriptions/{subscription_id}", subscription, ["GET", "PATCH", "DELETE"], "GraphSubscription"),
    (V + "/subscriptions/{subscription_id}/reauthorize", reauthorize, ["POST"], "Reauthorize"),
    (V + "/$batch", batch, ["POST"], "Batch"),
]


_known = [
    Route(path, graph_endpoint(name, endpoint), methods=methods) for path, endpoint, methods, name in routes
]
# Last: anything else under /v1.0 gets Graph's JSON error, never the server's plain-text 404 or 405.
graph_routes = [
    *_known,
    Route(
        V + "/{rest:path}",
        graph_endpoint("Unknown", unknown_segment),
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    ),
]
