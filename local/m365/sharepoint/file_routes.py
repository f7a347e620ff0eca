"""Files and folders in document libraries, addressed as SharePoint writes them:
`GetFileByServerRelativeUrl('{url}')`, `GetFolderByServerRelativeUrl('{url}')/Files/add(…)`,
`Folders/add('{url}')`, with function arguments in any order."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import errors
from .errors import SharePointError
from .http import (
    api_url,
    app_id,
    check_etag,
    entity,
    file_url,
    folder_url,
    function_arguments,
    json_body,
    ok,
    select,
    site_path,
    state_of,
)
from .model import Item


def file_entity(request: Request, item: Item) -> dict[str, Any]:
    assert item.file is not None
    uri = api_url(request, f"Web/GetFileByServerRelativeUrl('{item.file.server_relative_url}')")
    return entity(item.file_json(), "SP.File", uri, etag=item.version)


def folder_entity(request: Request, url: str, item: Item | None) -> dict[str, Any]:
    uri = api_url(request, f"Web/GetFolderByServerRelativeUrl('{url}')")
    if item is None:
        name = url.rstrip("/").rpartition("/")[2]
        body = {"Exists": True, "Name": name, "ServerRelativeUrl": url.rstrip("/")}
    else:
        body = item.folder_json()
    return entity(body, "SP.Folder", uri)


async def add_file(request: Request) -> Response:
    """`Files/add(url='{name}',overwrite=true)`; the content is the request body."""
    arguments = function_arguments(request.path_params["arguments"])
    if "url" not in arguments:
        raise SharePointError(400, errors.ARGUMENT, "The parameter url is required by Files/add.")
    item = state_of(request).add_file(
        site_path(request),
        folder_url(request),
        arguments["url"],
        await request.body(),
        overwrite=arguments.get("overwrite", "false").lower() == "true",
    )
    return ok(request, file_entity(request, item))


async def file(request: Request) -> Response:
    tenant = state_of(request)
    sp_list, found = tenant.find_file(site_path(request), file_url(request))
    if request.method == "GET":
        return ok(request, select(file_entity(request, found), request))
    check_etag(request, found)
    tenant.delete_item(site_path(request), sp_list, found.id)
    return Response(status_code=200)


async def file_content(request: Request) -> Response:
    _, found = state_of(request).find_file(site_path(request), file_url(request))
    assert found.file is not None
    return Response(found.file.content, media_type="application/octet-stream")


async def file_item(request: Request) -> Response:
    """`…/ListItemAllFields`: the file's list item (rename by updating `FileLeafRef`)."""
    tenant = state_of(request)
    sp_list, found = tenant.find_file(site_path(request), file_url(request))
    if request.method == "GET":
        uri = api_url(request, f"Web/Lists(guid'{sp_list.id}')/Items({found.id})")
        return ok(
            request, select(entity(found.to_json(), sp_list.item_entity_type, uri, found.version), request)
        )
    check_etag(request, found)
    tenant.update_item(site_path(request), sp_list, found.id, await json_body(request))
    return Response(status_code=204)


async def file_action(request: Request) -> Response:
    """CheckOut(), CheckIn(comment='…',checkintype=N), UndoCheckOut(), moveto(newurl='…',flags=N),
    MoveTo(newUrl=…), recycle()."""
    tenant = state_of(request)
    path = site_path(request)
    url = file_url(request)
    name, _, rest = request.path_params["action"].partition("(")
    arguments = function_arguments(rest.removesuffix(")"))
    match name:
        case "checkout":
            tenant.check_out(path, url, app_id(request))
        case "checkin" | "undocheckout":
            tenant.check_in(path, url)
        case "moveto":
            if "newurl" not in arguments:
                raise SharePointError(400, errors.ARGUMENT, "The parameter newUrl is required by MoveTo.")
            flags = arguments.get("flags", "0")
            if not flags.isdigit():
                raise SharePointError(400, errors.ARGUMENT, "The parameter flags is not valid.")
            tenant.move_file(path, url, arguments["newurl"], overwrite=int(flags) & 1 == 1)
        case "recycle":
            sp_list, found = tenant.find_file(path, url)
            return ok(request, {"value": tenant.recycle_item(path, sp_list, found.id)})
        case _:
            raise SharePointError(404, errors.NOT_FOUND, f"Cannot find resource for the request {name}.")
    return Response(status_code=200)


async def add_folder(request: Request) -> Response:
    """`Folders/add('{url}')` below a folder, `web/folders/add('{url}')`, or `POST web/folders`
    with `{"ServerRelativeUrl": …}`."""
    url = request.path_params.get("url")
    if url is not None:
        relative = url[1:-1]
    else:
        relative = str((await json_body(request)).get("ServerRelativeUrl") or "")
    if "folder" in request.path_params and not relative.startswith("/"):
        relative = f"{folder_url(request)}/{relative}"
    if not relative.startswith("/"):
        relative = f"{site_path(request).rstrip('/')}/{relative}"
    folder = state_of(request).add_folder(site_path(request), relative.rstrip("/"))
    return ok(request, folder_entity(request, relative.rstrip("/"), folder))


async def folder(request: Request) -> Response:
    tenant = state_of(request)
    url = folder_url(request)
    if request.method == "DELETE":
        tenant.delete_folder(site_path(request), url)
        return Response(status_code=200)
    if url.rstrip("/").lower() == tenant.site(site_path(request)).path.rstrip("/").lower():
        return ok(request, select(folder_entity(request, url, None), request))  # the web's root folder
    _, found = tenant.find_folder(site_path(request), url)
    return ok(request, select(folder_entity(request, url, found), request))


async def folder_files(request: Request) -> Response:
    found = state_of(request).folder_contents(site_path(request), folder_url(request))
    return ok(request, {"value": [select(file_entity(request, item), request) for item in found]})
