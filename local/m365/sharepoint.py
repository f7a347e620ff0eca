"""SharePoint REST routes: parse the request, call the tenant model, shape the answer.

Lists are addressed as `lists('{id}')`, `lists(guid'{id}')` or `lists/getbytitle('{title}')`
below `/sites/{site}/_api/web/`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import httpx
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import errors
from .errors import SharePointError
from .state import SharePointTenant, SpList

VALIDATION_TIMEOUT_SECONDS = 5.0
_NOMETADATA = "application/json;odata=nometadata;streaming=true;charset=utf-8"


class ListPathConvertor(Convertor):
    regex = r"lists\((?:guid)?'[^'/]+'\)|lists/getbytitle\('[^'/]+'\)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("listpath", ListPathConvertor())


def _tenant(request: Request) -> SharePointTenant:
    return request.app.state.tenant


def _site_path(request: Request) -> str:
    return f"/sites/{request.path_params['site']}"


def _resolve_list(request: Request) -> SpList:
    ref = request.path_params["list"]
    match = re.fullmatch(r"lists\((?:guid)?'([^']+)'\)", ref)
    if match:
        return _tenant(request).find_list(_site_path(request), list_id=match.group(1))
    by_title = re.fullmatch(r"lists/getbytitle\('([^']+)'\)", ref)
    if by_title is None:
        raise errors.list_not_found()
    return _tenant(request).find_list(_site_path(request), title=by_title.group(1))


def _ok(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=_NOMETADATA)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        raise SharePointError(
            400, errors.ARGUMENT, "Invalid JSON. A token was not recognized in the JSON content."
        ) from None
    if not isinstance(body, dict):
        raise SharePointError(400, errors.ARGUMENT, "The request body must be a JSON object.")
    return body


def _select(body: dict[str, Any], request: Request) -> dict[str, Any]:
    fields = request.query_params.get("$select")
    if not fields:
        return body
    wanted = [f.strip() for f in fields.split(",")]
    return {name: body[name] for name in wanted if name in body}


# --- lists -------------------------------------------------------------------------------------


async def create_list(request: Request) -> Response:
    body = await _json_body(request)
    tenant = _tenant(request)
    sp_list = tenant.create_list(
        _site_path(request), body.get("Title", ""), int(body.get("BaseTemplate", 100))
    )
    return _ok(tenant.list_json(tenant.site(_site_path(request)), sp_list), 201)


async def get_list(request: Request) -> Response:
    tenant = _tenant(request)
    sp_list = _resolve_list(request)
    return _ok(_select(tenant.list_json(tenant.site(_site_path(request)), sp_list), request))


# --- items -------------------------------------------------------------------------------------


async def items(request: Request) -> Response:
    tenant = _tenant(request)
    sp_list = _resolve_list(request)
    if request.method == "GET":
        return _ok({"value": [item.to_json() for item in sp_list.items.values()]})
    item = tenant.add_item(_site_path(request), sp_list, await _json_body(request))
    return _ok(item.to_json(), 201)


async def item(request: Request) -> Response:
    tenant = _tenant(request)
    sp_list = _resolve_list(request)
    item_id = int(request.path_params["item_id"])
    method = request.headers.get("X-HTTP-Method", request.method).upper()
    if method == "GET":
        return _ok(tenant.get_item(sp_list, item_id).to_json())
    if method in ("PATCH", "MERGE"):
        tenant.update_item(_site_path(request), sp_list, item_id, await _json_body(request))
        return Response(status_code=204)
    if method == "DELETE":
        tenant.delete_item(_site_path(request), sp_list, item_id)
        return Response(status_code=200)
    raise SharePointError(405, errors.INVALID_OPERATION, f"The HTTP method '{method}' cannot be used here.")


async def recycle_item(request: Request) -> Response:
    tenant = _tenant(request)
    recycle_id = tenant.recycle_item(
        _site_path(request), _resolve_list(request), int(request.path_params["item_id"])
    )
    return _ok({"value": recycle_id})


async def restore_recycled(request: Request) -> Response:
    _tenant(request).restore(request.path_params["recycle_id"])
    return Response(status_code=200)


# --- change log --------------------------------------------------------------------------------


async def get_changes(request: Request) -> Response:
    tenant = _tenant(request)
    site = tenant.site(_site_path(request))
    query = (await _json_body(request)).get("query") or {}
    changes = tenant.get_changes(_resolve_list(request), query)
    return _ok(
        {
            "value": [
                {
                    "ChangeToken": {"StringValue": change.token},
                    "ChangeType": change.change_type,
                    "SiteId": site.id,
                    "Time": change.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "ItemId": change.item_id,
                    "ListId": change.list_id,
                    "WebId": site.web_id,
                    "UniqueId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{change.list_id}/{change.item_id}")),
                }
                for change in changes
            ]
        }
    )


# --- subscriptions -----------------------------------------------------------------------------


async def subscriptions(request: Request) -> Response:
    tenant = _tenant(request)
    sp_list = _resolve_list(request)
    if request.method == "GET":
        tenant.expire_subscriptions(sp_list)
        return _ok({"value": [s.to_json() for s in sp_list.subscriptions.values()]})
    notification_url, expiration, client_state = tenant.check_subscription_request(await _json_body(request))
    await _validate_notification_url(request, notification_url)
    subscription = tenant.add_subscription(sp_list, notification_url, expiration, client_state)
    body = subscription.to_json()
    del body["clientState"]  # the create answer does not echo it; GET does
    return _ok(body, 201)


async def subscription(request: Request) -> Response:
    tenant = _tenant(request)
    sp_list = _resolve_list(request)
    subscription_id = request.path_params["subscription_id"]
    if request.method == "GET":
        return _ok(tenant.get_subscription(sp_list, subscription_id).to_json())
    if request.method == "PATCH":
        tenant.renew_subscription(sp_list, subscription_id, await _json_body(request))
        return Response(status_code=204)
    tenant.delete_subscription(sp_list, subscription_id)
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


SITE = "/sites/{site}/_api/web"
LIST = SITE + "/{list:listpath}"

routes = [
    Route(SITE + "/lists", create_list, methods=["POST"], name="create_list"),
    Route(LIST + "/GetChanges", get_changes, methods=["POST"], name="get_changes"),
    Route(LIST + "/items", items, methods=["GET", "POST"], name="items"),
    Route(LIST + "/items({item_id:int})", item, methods=["GET", "PATCH", "POST", "DELETE"], name="item"),
    Route(LIST + "/items({item_id:int})/recycle()", recycle_item, methods=["POST"], name="recycle_item"),
    Route(LIST + "/subscriptions", subscriptions, methods=["GET", "POST"], name="subscriptions"),
    Route(
        LIST + "/subscriptions('{subscription_id}')",
        subscription,
        methods=["GET", "PATCH", "DELETE"],
        name="subscription",
    ),
    Route(LIST, get_list, methods=["GET"], name="get_list"),
    Route(
        SITE + "/RecycleBin('{recycle_id}')/restore()",
        restore_recycled,
        methods=["POST"],
        name="restore_recycled",
    ),
]


def authorized(request: Request) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and _tenant(request).token_is_valid(token.strip(), time.time())
