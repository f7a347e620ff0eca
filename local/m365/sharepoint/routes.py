"""SharePoint REST routes: parse the request, call the tenant model, shape the answer.

Sites live at the tenant root `/`, under `/sites/{name}` and `/teams/{name}`, with subsites below
them. Lists are addressed as `lists('{id}')`, `lists(guid'{id}')` or `lists/getbytitle('{title}')`,
files as `GetFileByServerRelativeUrl('{url}')`, folders as `GetFolderByServerRelativeUrl('{url}')`.
Answers are `odata=nometadata` JSON, or wrapped in `{"d": ...}` when the caller asks for
`odata=verbose`, as SharePoint does.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import errors
from .errors import SharePointError
from .http import (
    Endpoint,
    app_id,
    json_body,
    method,
    ok,
    quoted,
    resolve_list,
    select,
    sharepoint_endpoint,
    site_path,
    state_of,
)
from .model import Change, SpList

VALIDATION_TIMEOUT_SECONDS = 5.0


# --- lists -------------------------------------------------------------------------------------


async def create_list(request: Request) -> Response:
    body = await json_body(request)
    tenant = state_of(request)
    sp_list = tenant.create_list(
        site_path(request), body.get("Title", ""), int(body.get("BaseTemplate", 100))
    )
    return ok(request, tenant.list_json(tenant.site(site_path(request)), sp_list), 201)


async def get_lists(request: Request) -> Response:
    tenant = state_of(request)
    site = tenant.site(site_path(request))
    query = request.query_params.get("$filter", "").strip()
    if query and query.lower() != "hidden eq false":
        raise SharePointError(400, errors.INVALID_CLIENT_QUERY, "The expression is not valid.")
    lists = [{**tenant.list_json(site, sp_list), "Hidden": False} for sp_list in site.lists.values()]
    return ok(request, {"value": [select(body, request) for body in lists]})


async def get_list(request: Request) -> Response:
    tenant = state_of(request)
    sp_list = resolve_list(request)
    return ok(request, select(tenant.list_json(tenant.site(site_path(request)), sp_list), request))


# --- items -------------------------------------------------------------------------------------


async def items(request: Request) -> Response:
    tenant = state_of(request)
    sp_list = resolve_list(request)
    if request.method == "GET":
        return ok(request, _item_page(request, sp_list))
    item = tenant.add_item(site_path(request), sp_list, await json_body(request))
    return ok(request, item.to_json(), 201)


_MODIFIED_FILTER = re.compile(r"^Modified\s+(ge|gt)\s+datetime'([^']+)'$", re.IGNORECASE)
_SKIPTOKEN = re.compile(r"^Paged=TRUE&p_ID=(\d+)$")


def _item_page(request: Request, sp_list: SpList) -> dict[str, Any]:
    """`GET items` with the OData a resync needs: `$filter=Modified ge datetime'…'`, `$top`,
    `$orderby=ID` and `__next` paging with `$skiptoken=Paged=TRUE&p_ID=…`."""
    from .state import _parse_time

    found = sorted(sp_list.items.values(), key=lambda i: i.id)
    query = request.query_params
    if "$filter" in query:
        match = _MODIFIED_FILTER.match(query["$filter"].strip())
        if match is None:
            raise SharePointError(400, errors.INVALID_CLIENT_QUERY, "The expression is not valid.")
        since = _parse_time(match.group(2))
        found = [
            i
            for i in found
            if (i.modified >= since if match.group(1).lower() == "ge" else i.modified > since)
        ]
    if "$skiptoken" in query:
        skip = _SKIPTOKEN.match(query["$skiptoken"])
        if skip is None:
            raise SharePointError(400, errors.ARGUMENT, "The skiptoken is not valid.")
        found = [i for i in found if i.id > int(skip.group(1))]
    top = int(query.get("$top", "100"))
    if not 0 < top <= 5000:
        raise errors.argument_out_of_range("$top")
    page: dict[str, Any] = {"value": [item.to_json() for item in found[:top]]}
    if len(found) > top:
        next_query = {k: v for k, v in query.items() if k != "$skiptoken"} | {
            "$skiptoken": f"Paged=TRUE&p_ID={found[top - 1].id}"
        }
        page["odata.nextLink"] = str(request.url.replace_query_params(**next_query))
    return page


async def item(request: Request) -> Response:
    tenant = state_of(request)
    sp_list = resolve_list(request)
    item_id = int(request.path_params["item_id"])
    verb = method(request)
    if verb == "GET":
        return ok(request, tenant.get_item(sp_list, item_id).to_json())
    if verb in ("PATCH", "MERGE"):
        tenant.update_item(site_path(request), sp_list, item_id, await json_body(request))
        return Response(status_code=204)
    if verb == "DELETE":
        tenant.delete_item(site_path(request), sp_list, item_id)
        return Response(status_code=200)
    raise SharePointError(405, errors.INVALID_OPERATION, f"The HTTP method '{verb}' cannot be used here.")


async def recycle_item(request: Request) -> Response:
    tenant = state_of(request)
    recycle_id = tenant.recycle_item(
        site_path(request), resolve_list(request), int(request.path_params["item_id"])
    )
    return ok(request, {"value": recycle_id})


async def restore_recycled(request: Request) -> Response:
    state_of(request).restore(request.path_params["recycle_id"])
    return Response(status_code=200)


# --- files in document libraries ---------------------------------------------------------------

_ADD_ARGUMENTS = re.compile(r"^url='([^']+)'(?:,overwrite=(true|false))?$", re.IGNORECASE)
_MOVE_ARGUMENTS = re.compile(r"^newurl='([^']+)'(?:,flags=(\d+))?$", re.IGNORECASE)


async def add_file(request: Request) -> Response:
    """`GetFolderByServerRelativeUrl('{folder}')/Files/add(url='{name}',overwrite=true)`."""
    match = _ADD_ARGUMENTS.match(request.path_params["arguments"])
    if match is None:
        raise SharePointError(400, errors.ARGUMENT, "The parameters of Files/add are not valid.")
    item = state_of(request).add_file(
        site_path(request),
        quoted(request, "folder"),
        match.group(1),
        await request.body(),
        overwrite=(match.group(2) or "false").lower() == "true",
    )
    return ok(request, item.file_json())


async def file(request: Request) -> Response:
    tenant = state_of(request)
    url = quoted(request, "url")
    verb = method(request)
    sp_list, found = tenant.find_file(site_path(request), url)
    if verb == "GET":
        return ok(request, found.file_json())
    if verb == "DELETE":
        tenant.delete_item(site_path(request), sp_list, found.id)
        return Response(status_code=200)
    raise SharePointError(405, errors.INVALID_OPERATION, f"The HTTP method '{verb}' cannot be used here.")


async def file_item(request: Request) -> Response:
    """`GetFileByServerRelativeUrl('{url}')/ListItemAllFields`: the file's list item (rename by
    updating `FileLeafRef`)."""
    tenant = state_of(request)
    sp_list, found = tenant.find_file(site_path(request), quoted(request, "url"))
    verb = method(request)
    if verb == "GET":
        return ok(request, found.to_json())
    if verb in ("PATCH", "MERGE"):
        tenant.update_item(site_path(request), sp_list, found.id, await json_body(request))
        return Response(status_code=204)
    raise SharePointError(405, errors.INVALID_OPERATION, f"The HTTP method '{verb}' cannot be used here.")


async def file_action(request: Request) -> Response:
    """CheckOut(), CheckIn(comment='…',checkintype=N), moveto(newurl='…',flags=N), recycle()."""
    tenant = state_of(request)
    path = site_path(request)
    url = quoted(request, "url")
    action = request.path_params["action"]
    name, _, arguments = action.partition("(")
    arguments = arguments.removesuffix(")")
    match name.lower():
        case "checkout":
            tenant.check_out(path, url, app_id(request))
        case "checkin":
            tenant.check_in(path, url)
        case "moveto":
            move = _MOVE_ARGUMENTS.match(arguments)
            if move is None:
                raise SharePointError(400, errors.ARGUMENT, "The parameters of moveto are not valid.")
            tenant.move_file(path, url, move.group(1), overwrite=int(move.group(2) or 0) & 1 == 1)
        case "recycle":
            sp_list, found = tenant.find_file(path, url)
            return ok(request, {"value": tenant.recycle_item(path, sp_list, found.id)})
        case _:
            raise SharePointError(400, errors.INVALID_OPERATION, f"Unknown method '{name}'.")
    return Response(status_code=200)


# --- change log --------------------------------------------------------------------------------


async def get_changes(request: Request) -> Response:
    tenant = state_of(request)
    site = tenant.site(site_path(request))
    query = (await json_body(request)).get("query") or {}
    if not isinstance(query, dict):
        raise SharePointError(400, errors.ARGUMENT, "The query must be an SP.ChangeQuery object.")
    changes = tenant.get_changes(resolve_list(request), query)
    return ok(request, {"value": [_change_json(change, site.id, site.web_id) for change in changes]})


def _change_json(change: Change, site_id: str, web_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ChangeToken": {"StringValue": change.token},
        "ChangeType": change.change_type,
        "SiteId": site_id,
        "Time": change.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ItemId": change.item_id,
        "ListId": change.list_id,
        "WebId": web_id,
        "UniqueId": change.unique_id,
    }
    if change.server_relative_url is not None:
        body["ServerRelativeUrl"] = change.server_relative_url
    return body


# --- subscriptions -----------------------------------------------------------------------------


async def subscriptions(request: Request) -> Response:
    tenant = state_of(request)
    sp_list = resolve_list(request)
    if request.method == "GET":
        tenant.expire_subscriptions(sp_list)
        own = [s for s in sp_list.subscriptions.values() if s.app_id == app_id(request)]
        return ok(request, {"value": [s.to_json() for s in own]})
    notification_url, expiration, client_state = tenant.check_subscription_request(await json_body(request))
    await _validate_notification_url(request, notification_url)
    subscription = tenant.add_subscription(
        sp_list, notification_url, expiration, client_state, app_id(request)
    )
    return ok(request, subscription.to_json(), 201)


async def subscription(request: Request) -> Response:
    tenant = state_of(request)
    sp_list = resolve_list(request)
    subscription_id = request.path_params["subscription_id"]
    if request.method == "GET":
        return ok(request, tenant.get_subscription(sp_list, subscription_id, app_id(request)).to_json())
    if request.method == "PATCH":
        tenant.renew_subscription(sp_list, subscription_id, await json_body(request), app_id(request))
        return Response(status_code=204)
    tenant.delete_subscription(sp_list, subscription_id, app_id(request))
    return Response(status_code=204)


async def _validate_notification_url(request: Request, notification_url: str) -> None:
    """SharePoint calls the URL with a token and needs it echoed within five seconds."""
    token = str(uuid.uuid4())
    client: httpx.AsyncClient = request.app.state.http
    request.app.state.tenant.calls["ValidateNotificationUrl"] += 1
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


# (path below `{site}/_api/web`, endpoint, methods, operation name)
_WEB_ROUTES: list[tuple[str, Endpoint, list[str], str]] = [
    ("/lists", create_list, ["POST"], "create_list"),
    ("/lists", get_lists, ["GET"], "get_lists"),
    ("/{list:listpath}/GetChanges", get_changes, ["POST"], "get_changes"),
    ("/{list:listpath}/items", items, ["GET", "POST"], "items"),
    ("/{list:listpath}/items({item_id:int})", item, ["GET", "PATCH", "POST", "DELETE"], "item"),
    ("/{list:listpath}/items({item_id:int})/recycle()", recycle_item, ["POST"], "recycle_item"),
    ("/{list:listpath}/subscriptions", subscriptions, ["GET", "POST"], "subscriptions"),
    (
        "/{list:listpath}/subscriptions('{subscription_id}')",
        subscription,
        ["GET", "PATCH", "DELETE"],
        "subscription",
    ),
    ("/{list:listpath}", get_list, ["GET"], "get_list"),
    ("/RecycleBin('{recycle_id}')/restore()", restore_recycled, ["POST"], "restore_recycled"),
    (
        "/GetFolderByServerRelativeUrl({folder:quotedurl})/Files/add({arguments:arguments})",
        add_file,
        ["POST"],
        "add_file",
    ),
    ("/GetFileByServerRelativeUrl({url:quotedurl})", file, ["GET", "POST", "DELETE"], "file"),
    (
        "/GetFileByServerRelativeUrl({url:quotedurl})/ListItemAllFields",
        file_item,
        ["GET", "POST", "PATCH"],
        "file_item",
    ),
    (
        "/GetFileByServerRelativeUrl({url:quotedurl})/{action:methodcall}",
        file_action,
        ["POST"],
        "file_action",
    ),
]

# Every route once for the root site and once for sites and subsites below it.
routes = [
    Route(f"{prefix}/_api/web{path}", sharepoint_endpoint(name, endpoint), methods=methods, name=name)
    for prefix in ("", "/{site:sitepath}")
    for path, endpoint, methods, name in _WEB_ROUTES
]
