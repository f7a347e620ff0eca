"""OneDrive: a user's drive, uploads by path, drive items, and the drive's delta query
(`root/delta`, `?token=latest`, deleted items with a `deleted` facet)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .delivery import notify
from .delta import DRIVE_ITEM_PROPERTIES, delta_page
from .http import app_id_of, base_of, body_of, graph_of, now_of
from .model import DEFAULT_PAGE_SIZE, Drive, DriveItem

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
