"""How SharePoint REST reads a request and writes an answer, and SharePoint's dialect of the
guard every call goes through (`local/m365/endpoint.py`)."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..endpoint import Dialect, Endpoint, guarded
from ..faults import Fault
from . import errors
from .errors import SharePointError
from .model import SpList

if TYPE_CHECKING:
    from .state import SharePointState
from ..directory import tenant_of
from .state import ACTING_APP, ACTING_USER

_NOMETADATA = "application/json;odata=nometadata;streaming=true;charset=utf-8"
_VERBOSE = "application/json;odata=verbose;charset=utf-8"


class _Pattern(Convertor):
    regex = ""

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


_LIST = r"lists\((?:guid)?'[^'/]+'\)|lists/getbytitle\('[^'/]+'\)"


class FolderPathConvertor(_Pattern):
    """A folder by URL, a list's root folder or the web's, and folders below it by name."""

    regex = (
        rf"(?:getfolderby(?:serverrelativeurl|id)\('[^']*'\)|(?:{_LIST})/rootfolder|rootfolder)"
        r"(?:/folders\('[^']*'\))*"
    )


class FilePathConvertor(_Pattern):
    """A file by URL or by its unique id (the address a client keeps after reading the file)."""

    regex = r"get(?:filebyserverrelativeurl|filebyid)\('[^']*'\)"


class ListPathConvertor(_Pattern):
    regex = _LIST


class SitePathConvertor(_Pattern):
    """`sites/x` or `teams/x`, and any subsites below (never into `_api`)."""

    regex = r"(?:sites|teams)/[^/]+(?:/(?!_api(?:/|$))[^/]+)*"


class QuotedUrlConvertor(_Pattern):
    """The argument of GetFileByServerRelativeUrl('...') and friends: a path in quotes."""

    regex = r"'[^']*'"


class MethodCallConvertor(_Pattern):
    """`CheckIn(comment='',checkintype=1)`, `moveto(newurl='/sites/x/Docs/a.docx',flags=1)`."""

    regex = r"[A-Za-z]+\([^)]*\)"


class ArgumentsConvertor(_Pattern):
    regex = r"[^)]*"


register_url_convertor("listpath", ListPathConvertor())
register_url_convertor("methodcall", MethodCallConvertor())
register_url_convertor("arguments", ArgumentsConvertor())
register_url_convertor("sitepath", SitePathConvertor())
register_url_convertor("folderpath", FolderPathConvertor())
register_url_convertor("filepath", FilePathConvertor())
register_url_convertor("quotedurl", QuotedUrlConvertor())


def state_of(request: Request) -> SharePointState:
    return tenant_of(request).sharepoint


def site_path(request: Request) -> str:
    site = request.path_params.get("site")
    return f"/{site}" if site else "/"


def app_id(request: Request) -> str:
    return request.state.app_id


def quoted(request: Request, name: str) -> str:
    """The path parameters arrive percent-decoded already; drop the quotes."""
    return request.path_params[name][1:-1]


def folder_url(request: Request) -> str:
    """The server-relative URL of the `{folder:folderpath}` a request addresses."""
    address = request.path_params["folder"]
    base, *names = re.split(r"/folders\('", address)
    if base.startswith("getfolderbyserverrelativeurl("):
        url = base[len("getfolderbyserverrelativeurl('") : -2]
    elif base.startswith("getfolderbyid("):
        url = state_of(request).url_of_unique_id(site_path(request), base[len("getfolderbyid('") : -2])
    elif base == "rootfolder":
        url = state_of(request).site(site_path(request)).path
    else:
        url = resolve_list(request, base.removesuffix("/rootfolder")).root_folder
    return "/".join([url.rstrip("/"), *(name[:-2] for name in names)])


def file_url(request: Request) -> str:
    """The server-relative URL of the `{file:filepath}` a request addresses."""
    address = request.path_params["file"]
    if address.startswith("getfilebyid("):
        return state_of(request).url_of_unique_id(site_path(request), address[len("getfilebyid('") : -2])
    return address[len("getfilebyserverrelativeurl('") : -2]


def resolve_list(request: Request, ref: str | None = None) -> SpList:
    ref = ref or request.path_params["list"]
    match = re.fullmatch(r"lists\((?:guid)?'([^']+)'\)", ref)
    if match:
        return state_of(request).find_list(site_path(request), list_id=match.group(1))
    by_title = re.fullmatch(r"lists/getbytitle\('([^']+)'\)", ref)
    if by_title is None:
        raise errors.list_not_found()
    return state_of(request).find_list(site_path(request), title=by_title.group(1))


def wants_verbose(request: Request) -> bool:
    return "odata=verbose" in request.headers.get("Accept", "").lower()


def ok(request: Request, body: Any, status: int = 200) -> JSONResponse:
    """`odata=nometadata` JSON, or verbose (`{"d": ...}`, collections as `results` with `__next`,
    each entity with its `__metadata`) when the caller asks for it."""
    if not wants_verbose(request):
        return JSONResponse(_without_metadata(body), status_code=status, media_type=_NOMETADATA)
    if isinstance(body, dict) and isinstance(body.get("value"), list):
        page: dict[str, Any] = {"results": body["value"]}
        if "odata.nextLink" in body:
            page["__next"] = body["odata.nextLink"]
        body = page
    return JSONResponse({"d": body}, status_code=status, media_type=_VERBOSE)


def _without_metadata(body: Any) -> Any:
    if isinstance(body, dict):
        return {key: _without_metadata(value) for key, value in body.items() if key != "__metadata"}
    if isinstance(body, list):
        return [_without_metadata(value) for value in body]
    return body


def api_url(request: Request, relative: str) -> str:
    """The absolute URL of `{site}/_api/{relative}`, as SharePoint writes `__metadata.uri`."""
    root = str(request.base_url).rstrip("/")
    return f"{root}{site_path(request).rstrip('/')}/_api/{relative}"


def entity(body: dict[str, Any], type_name: str, uri: str, etag: int | None = None) -> dict[str, Any]:
    """An entity with the verbose `__metadata` SharePoint gives it (dropped again in nometadata)."""
    metadata: dict[str, Any] = {"id": uri, "uri": uri, "type": type_name}
    if etag is not None:
        metadata["etag"] = f'"{etag}"'
    return {"__metadata": metadata, **body}


def check_etag(request: Request, item: Any) -> None:
    """`IF-MATCH: "N"` must name the item's current version; `*` or no header matches any."""
    wanted = request.headers.get("If-Match", "*").strip()
    if wanted != "*" and wanted.removeprefix("W/") != f'"{item.version}"':
        raise SharePointError(
            412,
            "-1, Microsoft.SharePoint.Client.ClientServiceException",
            f"The request ETag value '{wanted}' does not match the object's ETag value '\"{item.version}\"'.",
        )


_ARGUMENT = re.compile(r"\s*(\w+)\s*=\s*('(?:[^']|'')*'|[^,]*)\s*(?:,|$)")


def function_arguments(text: str) -> dict[str, str]:
    """`url='a, b.docx',overwrite=true` -> {"url": "a, b.docx", "overwrite": "true"}, in any order,
    as SharePoint binds a function's named parameters."""
    found: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _ARGUMENT.match(text, position)
        if match is None or match.end() == position:
            raise SharePointError(400, errors.ARGUMENT, f"The parameters '{text}' are not valid.")
        value = match.group(2)
        if value.startswith("'"):
            value = value[1:-1].replace("''", "'")
        found[match.group(1).lower()] = value
        position = match.end()
    return found


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise SharePointError(
            400, errors.ARGUMENT, "Invalid JSON. A token was not recognized in the JSON content."
        ) from None
    if not isinstance(body, dict):
        raise SharePointError(400, errors.ARGUMENT, "The request body must be a JSON object.")
    return body


def select(body: dict[str, Any], request: Request) -> dict[str, Any]:
    fields = request.query_params.get("$select")
    if not fields:
        return body
    wanted = [f.strip() for f in fields.split(",")]
    return {name: body[name] for name in wanted if name in body}


def acting_user(request: Request) -> str | None:
    """The user a delegated bearer token acts for; None for an app-only one."""
    _, _, token = request.headers.get("Authorization", "").partition(" ")
    return tenant_of(request).tokens.user_of(token.strip(), time.time())


def _injected(fault: Fault) -> SharePointError:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
    return SharePointError(
        fault.status, errors.THROTTLED, "The request has been throttled (injected by the emulator).", headers
    )


def _unauthorized(request_id: str) -> Response:
    return JSONResponse(
        {"error_description": "Invalid JWT token. The token is missing or has expired."},
        status_code=401,
        headers={
            "WWW-Authenticate": 'Bearer realm="emulator", client_id="00000003-0000-0ff1-ce00-000000000000"',
            "request-id": request_id,
        },
    )


def _acting(request: Request, app_id: str) -> None:
    """Who the model writes as the change's and the item's editor."""
    ACTING_APP.set(app_id)
    ACTING_USER.set(acting_user(request))


SHAREPOINT = Dialect(
    service="sharepoint",
    error=SharePointError,
    error_response=lambda error, request, request_id: errors.error_response(
        error,  # type: ignore[arg-type]
        request_id,
        verbose=wants_verbose(request),
    ),
    unauthorized=_unauthorized,
    injected=_injected,
    request_headers=lambda request_id: {"request-id": request_id, "SPRequestGuid": request_id},
    authorized=_acting,
    # A token for this tenant's SharePoint root, not Graph's nor another tenant's.
    takes_audience=lambda request, audience: (
        audience == request.app.state.directory.sharepoint_url(tenant_of(request), request)
    ),
)


def sharepoint_endpoint(name: str, operations: dict[str, str], endpoint: Endpoint) -> Endpoint:
    """`endpoint` behind the guard every SharePoint call goes through; counted and faulted by the
    operation its method names in `operations` (by `name` for a method not named there)."""
    return guarded(
        SHAREPOINT,
        {name, *operations.values()},
        lambda request: operations.get(request.method, name),
        endpoint,
    )
