"""Lists, their items (with CAML and paging), the recycle bin and the change log (`GetChanges`)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import caml, errors, lookups, odata
from .errors import SharePointError
from .http import (
    api_url,
    check_etag,
    entity,
    json_body,
    ok,
    quoted,
    resolve_list,
    select,
    site_path,
    state_of,
)
from .model import Change, Item, SpList

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
    """`GET lists` with `$filter` (`BaseTemplate eq 100`, `Hidden eq false`; local/m365/sharepoint/
    odata.py), `$top` and `$skip` (which SharePoint honours on lists, though not on items)."""
    site = state_of(request).site(site_path(request))
    query = request.query_params
    entities = [list_entity(request, sp_list) for sp_list in site.lists.values()]
    if query.get("$filter", "").strip():
        fields = {name for body in entities for name in body if not name.startswith(("__", "odata."))}
        keep = odata.parse(query["$filter"], fields | LIST_FIELDS)
        entities = [body for body in entities if keep(body)]
    lists = [select(body, request) for body in entities]
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


# What a MERGE of a list may change here; SharePoint takes more, and refuses names SP.List lacks.
UPDATABLE_LIST_PROPERTIES = {"Title", "EnableVersioning", "Description"}


async def update_list(request: Request) -> Response:
    """`MERGE` (or `PATCH`) a list: `{"EnableVersioning": false}` is the versioning switch."""
    sp_list = resolve_list(request)
    body = await json_body(request)
    for name, value in body.items():
        if name.startswith(("__", "odata.")):
            continue
        if name not in UPDATABLE_LIST_PROPERTIES:
            raise SharePointError(
                400,
                errors.INVALID_CLIENT_QUERY,
                f"The property '{name}' does not exist on type 'SP.List'. Make sure to only use "
                "property names that are defined by the type.",
            )
        if name == "EnableVersioning":
            if not isinstance(value, bool):
                raise SharePointError(
                    400, errors.INVALID_CLIENT_QUERY, "EnableVersioning must be true or false."
                )
            sp_list.enable_versioning = value
        elif name == "Title" and isinstance(value, str) and value:
            sp_list.title = value
    return Response(status_code=204)


async def item_versions(request: Request) -> Response:
    """`items({id})/versions`: the item's versions, newest first (only the current one when the
    list keeps no versions)."""
    sp_list = resolve_list(request)
    item = state_of(request).get_item(sp_list, int(request.path_params["item_id"]))
    newest_first = list(reversed(item.history))
    base = f"Web/Lists(guid'{sp_list.id}')/Items({item.id})/Versions"
    found = [
        select(
            entity(
                version.to_json(index == 0),
                "SP.ListItemVersion",
                api_url(request, f"{base}({version.number * 512})"),
            ),
            request,
        )
        for index, version in enumerate(newest_first)
    ]
    return ok(request, {"value": found})


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


# What every item and every list may be filtered on, whether or not one has a value.
ITEM_FIELDS = {"Title", "Id", "ID", "Created", "Modified", "AuthorId", "EditorId", "GUID"}
LIST_FIELDS = {"Title", "BaseTemplate", "Hidden", "Id", "ItemCount"}
_SKIPTOKEN = re.compile(r"^Paged=TRUE&p_ID=(\d+)$")


def _item_page(request: Request, sp_list: SpList) -> dict[str, Any]:
    """`GET items` with `$filter` (local/m365/sharepoint/odata.py; a resync's `Modified ge
    datetime'…'`), `$select`, `$top`,
    `$orderby=ID` and paging with `$skiptoken=Paged=TRUE&p_ID=…`. SharePoint ignores `$skip` on
    items, and so does the emulator: a client that pages with it sees page one again."""
    found = sorted(sp_list.items.values(), key=lambda i: i.id)
    query = request.query_params
    if query.get("$filter", "").strip():
        bodies = {i.id: i.to_json() for i in found}
        fields = {name for body in bodies.values() for name in body} | ITEM_FIELDS
        keep = odata.parse(query["$filter"], fields)
        found = [i for i in found if keep(bodies[i.id])]
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
