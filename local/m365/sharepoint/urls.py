"""SharePoint REST's route table: each path and method, its handler (web_routes, list_routes,
subscription_routes, file_routes, batch), and the operation name counters and faults use.

Sites live at the tenant root `/`, under `/sites/{name}` and `/teams/{name}`, with subsites below
them. Lists are addressed as `lists('{id}')`, `lists(guid'{id}')` or `lists/getbytitle('{title}')`,
files as `GetFileByServerRelativeUrl('{url}')`, folders as `GetFolderByServerRelativeUrl('{url}')`.
Answers are `odata=nometadata` JSON, or wrapped in `{"d": ...}` when the caller asks for
`odata=verbose`, as SharePoint does.
"""

from __future__ import annotations

from starlette.routing import Route

from .batch import batch
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
from .http import Endpoint, sharepoint_endpoint
from .list_routes import (
    create_list,
    get_changes,
    get_items_by_query,
    get_list,
    get_lists,
    item,
    item_versions,
    items,
    recycle_item,
    restore_recycled,
    update_list,
)
from .subscription_routes import remove_subscription, subscription, subscriptions
from .web_routes import context_info, get_site, get_web, unknown_resource

# (route name, method) -> the operation name that counters and injected faults use.
OPERATIONS = {
    ("create_list", "POST"): "CreateList",
    ("get_list", "GET"): "GetList",
    ("update_list", "PATCH"): "UpdateList",
    ("item_versions", "GET"): "GetItemVersions",
    ("items", "GET"): "GetItems",
    ("items", "POST"): "AddItem",
    ("get_items_by_query", "POST"): "GetItemsByQuery",
    ("item", "GET"): "GetItem",
    ("item", "PATCH"): "UpdateItem",
    ("item", "DELETE"): "DeleteItem",
    ("recycle_item", "POST"): "RecycleItem",
    ("restore_recycled", "POST"): "Restore",
    ("get_changes", "POST"): "GetChanges",
    ("subscriptions", "GET"): "ListSubscriptions",
    ("subscriptions", "POST"): "CreateSubscription",
    ("subscription", "GET"): "GetSubscription",
    ("subscription", "PATCH"): "UpdateSubscription",
    ("subscription", "DELETE"): "DeleteSubscription",
    ("get_lists", "GET"): "GetLists",
    ("add_file", "POST"): "AddFile",
    ("file", "GET"): "GetFile",
    ("file", "DELETE"): "DeleteFile",
    ("file_item", "GET"): "GetFileItem",
    ("file_item", "PATCH"): "UpdateFileItem",
    ("file_action", "POST"): "FileAction",
    ("get_web", "GET"): "GetWeb",
    ("contextinfo", "POST"): "ContextInfo",
    ("add_folder", "POST"): "AddFolder",
    ("folder", "GET"): "GetFolder",
    ("folder", "DELETE"): "DeleteFolder",
    ("batch", "POST"): "Batch",
}


def _guarded(name: str, endpoint: Endpoint) -> Endpoint:
    operations = {method: operation for (route, method), operation in OPERATIONS.items() if route == name}
    return sharepoint_endpoint(name, operations, endpoint)


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
    ("/{list:listpath}", update_list, ["PATCH"], "update_list"),
    ("/{list:listpath}/items({item_id:int})/versions", item_versions, ["GET"], "item_versions"),
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
            Route(f"{prefix}/_api/web{path}", _guarded(name, endpoint), methods=methods, name=name)
            for path, endpoint, methods, name in _WEB_ROUTES
        ),
        Route(f"{prefix}/_api/contextinfo", _guarded("contextinfo", context_info), methods=["POST"]),
        Route(f"{prefix}/_api/site", _guarded("get_site", get_site), methods=["GET"]),
        Route(f"{prefix}/_api/$batch", _guarded("batch", batch), methods=["POST"]),
        Route(
            f"{prefix}/_api/{{rest:path}}",
            _guarded("unknown", unknown_resource),
            methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
        ),
    ]
]
