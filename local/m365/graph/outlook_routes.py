"""Outlook: messages in mail folders (well-known names or ids), events, each item by id, and
their delta queries (`messages/delta`, `calendarView/delta` in a window)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .delivery import notify
from .delta import MESSAGE_PROPERTIES, delta_page, max_page_size
from .errors import GraphError, bad_request
from .http import body_of, graph_of, now_of

# --- OneDrive ---------------------------------------------------------------------------------


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


async def outlook_item(request: Request) -> Response:
    graph = graph_of(request)
    user = graph.user(request.path_params["user"], now_of(request))
    collection = request.path_params["collection"].lower()
    if collection not in ("messages", "events"):
        segment = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
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
