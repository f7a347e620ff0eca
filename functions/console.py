"""`console`: the operators' page, served by the app itself (anonymous: it is static and holds no
data; every datum comes from the management API, called with the function key the person types)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import azure.functions as func

bp = func.Blueprint()  # type: ignore[no-untyped-call]

FILES = Path(__file__).parent / "console_files"
CONTENT_TYPES = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
    # A browser asks for an icon on every page; without one, each load logged a 404.
    "favicon.svg": "image/svg+xml",
}
# No inline script or style anywhere: what came from Microsoft 365 can never run as code here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@bp.function_name("console")
@bp.route(route="console/{file?}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console(req: func.HttpRequest) -> func.HttpResponse:
    path = urlsplit(req.url).path
    if not req.route_params.get("file") and not path.endswith("/"):
        # The page's files are named relative to it: /api/console would look for /api/console.js.
        return func.HttpResponse(status_code=308, headers={**SECURITY_HEADERS, "Location": f"{path}/"})
    name = req.route_params.get("file") or "index.html"
    if name not in CONTENT_TYPES:
        return func.HttpResponse("not found", status_code=404, headers=SECURITY_HEADERS)
    return func.HttpResponse(
        (FILES / name).read_bytes(),
        status_code=200,
        mimetype=CONTENT_TYPES[name],
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )
