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
from starlette.routing import Match, Route

from . import caml, errors, lookups
from .batch import batch
from .errors import SharePointError
from .file_routes import (
    add_file,
    add_folder,
    file,
    file_action,
    file_content,
    file_item,
    folder,
    folder_files,
)
from .http import (
    Endpoint,
    api_url,
    app_id,
    check_etag,
    entity,
    function_arguments,
    json_body,
    ok,
    quoted,
    resolve_list,
    select,
    sharepoint_endpoint,
    site_path,
    state_of,
    wants_verbose,
)
from .model import Change, Item, SpList, Subscription
from .state import parse_sharepoint_time

VALIDATION_TIMEOUT_SECONDS = 5.0
FORM_DIGEST_SECONDS = 1800


# --- the web, the site, the form digest ----------------------------------------------------------


async def get_web(request: Request) -> Response:
    site = state_of(request).site(site_path(request))
    url = api_url(request, "Web")
    body = {
        "Id": site.web_id,
        "Title": site.path.rstrip("/").rpartition("/")[2] or "Communication site",
        "ServerRelativeUrl": site.path,
        "Url": url.removesuffix("/_api/Web"),
        "WebTemplate": "STS",
        "Language": 1033,
    }
    return ok(request, select(entity(body, "SP.Web", url), request))


async def get_site(request: Request) -> Response:
    site = state_of(request).site(site_path(request))
    url = api_url(request, "Site")
    body = {"Id": site.id, "ServerRelativeUrl": site.path, "Url": url.removesuffix("/_api/Site")}
    return ok(request, select(entity(body, "SP.Site", url), request))


async def context_info(request: Request) -> Response:
    """`POST _api/contextinfo`: the form digest a client sends back in `X-RequestDigest`. With a
    bearer token SharePoint Online does not check the digest, so neither does the emulator."""
    now = state_of(request).clock.now()
    digest = f"0x{uuid.uuid4().hex.upper()}{uuid.uuid4().hex.upper()},{now:%d %b %Y %H:%M:%S} -0000"
    web_url = api_url(request, "").removesuffix("/_api/")
    body = {
        "FormDigestTimeoutSeconds": FORM_DIGEST_SECONDS,
        "FormDigestValue": digest,
        "LibraryVersion": "16.0.26811.12009",
        "SiteFullUrl": web_url,
        "SupportedSchemaVersions": ["14.0.0.0", "15.0.0.0"],
        "WebFullUrl": web_url,
    }
    if wants_verbose(request):
        body = {"GetContextWebInformation": {"__metadata": {"type": "SP.ContextWebInformation"}, **body}}
    return ok(request, body)


async def unknown_resource(request: Request) -> Response:
    """What no route serves: a known address with another verb is 405, anything else 404."""
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] == Match.PARTIAL:
            raise SharePointError(
                405, errors.INVALID_OPERATION, f"The HTTP method '{request.method}' cannot be used here."
            )
    segment = request.path_params["rest"].rpartition("/")[2]
    raise SharePointError(404, errors.NOT_FOUND, f"Cannot find resource for the request {segment}.")


# --- lists -------------------------------------------------------------------------------------


def list_entity(request: Request, sp_list: SpList) -> dict[str, Any]:
    tenant = state_of(request)
    body = tenant.list_json(tenant.site(site_path(request)), sp_list)
    return entity(body, "SP.List", api_url(request, f"Web/Lists(guid'{sp_list.id}')"))


def item_entity(request: Request, sp_list: SpList, item: Item) -> dict[str, Any]:
    uri = api_url(request, f"Web/Lists(guid'{sp_list.id}')/Items({item.id})")
    return entity(item.to_json(), sp_list.item_entity_type, uri, etag=item.version)


async def create_list(request: Request) -> Response:
    body = await json_body(request)
    sp_list = state_of(request).create_list(
        site_path(request), body.get("Title", ""), int(body.get("BaseTemplate", 100))
    )
    return ok(request, list_entity(request, sp_list), 201)


async def get_lists(request: Request) -> Response:
    """`GET lists` with `$filter=Hidden eq false`, `$top` and `$skip` (which SharePoint honours on
    lists, though not on items)."""
    site = state_of(request).site(site_path(request))
    query = request.query_params
    if query.get("$filter", "").strip() and query["$filter"].strip().lower() != "hidden eq false":
        raise SharePointError(400, errors.INVALID_CLIENT_QUERY, "The expression is not valid.")
    lists = [select(list_entity(request, sp_list), request) for sp_list in site.lists.values()]
    skip, top = _count(query, "$skip", 0), _count(query, "$top", 100)
    page: dict[str, Any] = {"value": lists[skip : skip + top]}
    if skip + top < len(lists):
        page["odata.nextLink"] = str(request.url.include_query_params(**{"$skip": skip + top, "$top": top}))
    return ok(request, page)


def _count(query: Any, name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or (name == "$top" and int(raw) == 0):
        raise errors.argument_out_of_range(name)
    return int(raw)


async def get_list(request: Request) -> Response:
    return ok(request, select(list_entity(request, resolve_list(request)), request))


# --- items -------------------------------------------------------------------------------------


async def items(request: Request) -> Response:
    tenant = state_of(request)
    sp_list = resolve_list(request)
    if request.method == "GET":
        return ok(request, _item_page(request, sp_list))
    fields = await json_body(request)
    _check_entity_type(fields, sp_list)
    item = tenant.add_item(site_path(request), sp_list, fields)
    return ok(request, item_entity(request, sp_list, item), 201)


def _check_entity_type(fields: dict[str, Any], sp_list: SpList) -> None:
    """Verbose bodies name their type; SharePoint refuses one that is not the list's."""
    metadata = fields.get("__metadata")
    named = metadata.get("type") if isinstance(metadata, dict) else None
    if named is not None and named != sp_list.item_entity_type:
        raise SharePointError(
            400,
            errors.INVALID_CLIENT_QUERY,
            f"A type named '{named}' could not be resolved by the model. When a model is available, "
            "each type name must resolve to a valid type.",
        )


_MODIFIED_FILTER = re.compile(r"^Modified\s+(ge|gt)\s+datetime'([^']+)'$", re.IGNORECASE)
_SKIPTOKEN = re.compile(r"^Paged=TRUE&p_ID=(\d+)$")


def _item_page(request: Request, sp_list: SpList) -> dict[str, Any]:
    """`GET items` with the OData a resync needs: `$filter=Modified ge datetime'…'`, `$top`,
    `$orderby=ID` and paging with `$skiptoken=Paged=TRUE&p_ID=…`. SharePoint ignores `$skip` on
    items, and so does the emulator: a client that pages with it sees page one again."""
    found = sorted(sp_list.items.values(), key=lambda i: i.id)
    query = request.query_params
    if "$filter" in query:
        match = _MODIFIED_FILTER.match(query["$filter"].strip())
        if match is None:
            raise SharePointError(400, errors.INVALID_CLIENT_QUERY, "The expression is not valid.")
        since = parse_sharepoint_time(match.group(2))
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
    top = _count(query, "$top", 100)
    if top > 5000:
        raise errors.argument_out_of_range("$top")
    page: dict[str, Any] = {
        "value": [select(item_entity(request, sp_list, item), request) for item in found[:top]]
    }
    if len(found) > top:
        next_query = {k: v for k, v in query.items() if k != "$skiptoken"} | {
            "$skiptoken": f"Paged=TRUE&p_ID={found[top - 1].id}"
        }
        page["odata.nextLink"] = str(request.url.replace_query_params(**next_query))
    return page


async def get_items_by_query(request: Request) -> Response:
    """`POST GetItems` with `{"query": {"ViewXml": "<View>…</View>"}}` (local/m365/sharepoint/caml.py)."""
    sp_list = resolve_list(request)
    query = (await json_body(request)).get("query")
    parsed = caml.parse(query.get("ViewXml") if isinstance(query, dict) else None)
    projection = lookups.parse(request.query_params.get("$select"), request.query_params.get("$expand"))
    found = [
        entity(
            lookups.apply(
                projection,
                caml.view(item.to_json(), parsed.view_fields),
                {"Author": item.author, "Editor": item.editor},
            ),
            sp_list.item_entity_type,
            api_url(request, f"Web/Lists(guid'{sp_list.id}')/Items({item.id})"),
        )
        for item in caml.run(parsed, sp_list)
    ]
    return ok(request, {"value": found})


async def item(request: Request) -> Response:
    tenant = state_of(request)
    sp_list = resolve_list(request)
    item_id = int(request.path_params["item_id"])
    if request.method == "GET":
        return ok(request, select(item_entity(request, sp_list, tenant.get_item(sp_list, item_id)), request))
    if request.method == "PATCH":
        fields = await json_body(request)
        _check_entity_type(fields, sp_list)
        check_etag(request, tenant.get_item(sp_list, item_id))
        tenant.update_item(site_path(request), sp_list, item_id, fields)
        return Response(status_code=204)
    check_etag(request, tenant.get_item(sp_list, item_id))
    tenant.delete_item(site_path(request), sp_list, item_id)
    return Response(status_code=200)


async def recycle_item(request: Request) -> Response:
    tenant = state_of(request)
    recycle_id = tenant.recycle_item(
        site_path(request), resolve_list(request), int(request.path_params["item_id"])
    )
    return ok(request, {"value": recycle_id})


async def restore_recycled(request: Request) -> Response:
    state_of(request).restore(quoted(request, "recycle_id"))
    return Response(status_code=200)


# --- change log --------------------------------------------------------------------------------


async def get_changes(request: Request) -> Response:
    tenant = state_of(request)
    site = tenant.site(site_path(request))
    query = (await json_body(request)).get("query") or {}
    if not isinstance(query, dict):
        raise SharePointError(400, errors.ARGUMENT, "The query must be an SP.ChangeQuery object.")
    changes = tenant.get_changes(resolve_list(request), query)
    uri = api_url(request, "Web/Lists/GetChanges")
    omit = tenant.quirks.omit_change_editors
    return ok(
        request,
        {
            "value": [
                entity(_change_json(change, site.id, site.web_id, omit_editor=omit), "SP.ChangeItem", uri)
                for change in changes
            ]
        },
    )


def _change_json(change: Change, site_id: str, web_id: str, *, omit_editor: bool) -> dict[str, Any]:
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
    if change.editor is not None and not omit_editor:
        body["Editor"] = change.editor
        if change.editor_email_hint:
            body["EditorEmailHint"] = change.editor_email_hint
    return body


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


# (path below `{site}/_api/web`, lower case as `paths.canonical_path` writes it, endpoint,
# methods, operation name)
_WEB_ROUTES: list[tuple[str, Endpoint, list[str], str]] = [
    ("", get_web, ["GET"], "get_web"),
    ("/lists", create_list, ["POST"], "create_list"),
    ("/lists", get_lists, ["GET"], "get_lists"),
    ("/{list:listpath}/getchanges", get_changes, ["POST"], "get_changes"),
    ("/{list:listpath}/items", items, ["GET", "POST"], "items"),
    ("/{list:listpath}/getitems", get_items_by_query, ["POST"], "get_items_by_query"),
    ("/{list:listpath}/items({item_id:int})", item, ["GET", "PATCH", "DELETE"], "item"),
    ("/{list:listpath}/items({item_id:int})/recycle()", recycle_item, ["POST"], "recycle_item"),
    ("/{list:listpath}/subscriptions", subscriptions, ["GET", "POST"], "subscriptions"),
    ("/{list:listpath}/subscriptions/add", subscriptions, ["POST"], "subscriptions"),
    (
        "/{list:listpath}/subscriptions({subscription_id:quotedurl})",
        subscription,
        ["GET", "PATCH", "DELETE"],
        "subscription",
    ),
    (
        "/{list:listpath}/subscriptions/remove({arguments:arguments})",
        remove_subscription,
        ["POST"],
        "subscription",
    ),
    ("/{list:listpath}", get_list, ["GET"], "get_list"),
    ("/{list:listpath}/items({item_id:int})/parentlist", get_list, ["GET"], "get_list"),
    ("/recyclebin({recycle_id:quotedurl})/restore()", restore_recycled, ["POST"], "restore_recycled"),
    ("/folders", add_folder, ["POST"], "add_folder"),
    ("/folders/add({url:quotedurl})", add_folder, ["POST"], "add_folder"),
    ("/{folder:folderpath}", folder, ["GET", "DELETE"], "folder"),
    (
        "/{folder:folderpath}/files/add({arguments:arguments})",
        add_file,
        ["POST"],
        "add_file",
    ),
    (
        "/{folder:folderpath}/files",
        folder_files,
        ["GET"],
        "folder_files",
    ),
    (
        "/{folder:folderpath}/folders/add({url:quotedurl})",
        add_folder,
        ["POST"],
        "add_folder",
    ),
    ("/{file:filepath}", file, ["GET", "DELETE"], "file"),
    ("/{file:filepath}/$value", file_content, ["GET"], "file_content"),
    (
        "/{file:filepath}/listitemallfields",
        file_item,
        ["GET", "PATCH"],
        "file_item",
    ),
    (
        "/{file:filepath}/{action:methodcall}",
        file_action,
        ["POST"],
        "file_action",
    ),
]

# Every route once for the root site and once for sites and subsites below it.
routes = [
    route
    for prefix in ("", "/{site:sitepath}")
    for route in [
        *(
            Route(f"{prefix}/_api/web{path}", sharepoint_endpoint(name, endpoint), methods=methods, name=name)
            for path, endpoint, methods, name in _WEB_ROUTES
        ),
        Route(
            f"{prefix}/_api/contextinfo", sharepoint_endpoint("contextinfo", context_info), methods=["POST"]
        ),
        Route(f"{prefix}/_api/site", sharepoint_endpoint("get_site", get_site), methods=["GET"]),
        Route(f"{prefix}/_api/$batch", sharepoint_endpoint("batch", batch), methods=["POST"]),
        Route(
            f"{prefix}/_api/{{rest:path}}",
            sharepoint_endpoint("unknown", unknown_resource),
            methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
        ),
    ]
]
