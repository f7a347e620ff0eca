"""The web, the site and the form digest (`/_api/contextinfo`); and SharePoint's answer for a
resource it has no route for."""

from __future__ import annotations

import re
import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from . import errors
from .errors import SharePointError
from .http import (
    api_url,
    entity,
    ok,
    select,
    site_path,
    state_of,
    wants_verbose,
)

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


# What may stand between a segment's parentheses: nothing, a quoted key, a guid, a number, or a
# function's named arguments. Anything else (`lists(**guid**'…')`, a client's `subscriptions(<key>)`)
# SharePoint cannot parse: 400, "The expression "web/…" is not valid."
_KEY = re.compile(r"\((?!\)|'|guid'|\d+\)|[a-z_]+=)[^)]*\)")


async def unknown_resource(request: Request) -> Response:
    """What no route serves: a known address with another verb is 405, an address SharePoint
    cannot parse 400, anything else 404."""
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] == Match.PARTIAL:
            raise SharePointError(
                405, errors.INVALID_OPERATION, f"The HTTP method '{request.method}' cannot be used here."
            )
    if _KEY.search(request.path_params["rest"]):
        expression = request.path_params["rest"]
        raise SharePointError(
            400, errors.INVALID_CLIENT_QUERY, f'The expression "{expression}" is not valid.'
        )
    segment = request.path_params["rest"].rpartition("/")[2]
    raise SharePointError(404, errors.NOT_FOUND, f"Cannot find resource for the request {segment}.")
