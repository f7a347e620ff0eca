"""SharePoint REST as its clients write it, read into the one form the routes know.

SharePoint matches `_api` paths without regard to case (`_api/Web/Lists/GetByTitle('Tasks')`),
offers several spellings of one address (`lists/GetById('…')` and `lists('…')`,
`items/getItemById(5)`, `items/GetById(5)` and `items(5)`, `subscriptions/getById('…')`), writes
function arguments in any order, and lets a POST stand in for another verb through
`X-HTTP-Method`. This middleware rewrites each request, before routing, to lower case outside
quoted values, the short address forms and the tunnelled verb, so every route is written once.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

_API = re.compile(r"/_api(?=/|$)", re.IGNORECASE)

# (spelling a client may write, the form the routes know); applied after lower-casing.
_ALIASES = [
    (re.compile(r"/lists/getbyid\(('[^']*'|guid'[^']*')\)"), r"/lists(\1)"),
    (re.compile(r"/(?:items/)?getitembyid\('?(\d+)'?\)"), r"/items(\1)"),
    (re.compile(r"/items/getbyid\('?(\d+)'?\)"), r"/items(\1)"),
    (re.compile(r"/subscriptions/getbyid\(('[^']*')\)"), r"/subscriptions(\1)"),
    (re.compile(r"/getfilebyserverrelativepath\(decodedurl=('[^']*')\)"), r"/getfilebyserverrelativeurl(\1)"),
    (
        re.compile(r"/getfolderbyserverrelativepath\(decodedurl=('[^']*')\)"),
        r"/getfolderbyserverrelativeurl(\1)",
    ),
]
# A method called without its empty parentheses (`…/CheckOut`) is the same call.
_BARE_FILE_METHOD = re.compile(
    r"(/getfileby(?:serverrelativeurl|id)\('[^']*'\)/(?:checkout|undocheckout|publish|recycle))$"
)
_TUNNELLED = {"MERGE": "PATCH", "PATCH": "PATCH", "PUT": "PUT", "DELETE": "DELETE"}


def lower_outside_quotes(text: str) -> str:
    """`GetByTitle('My List')` -> `getbytitle('My List')`; a doubled quote inside a value stays
    inside it, since it toggles twice."""
    parts = text.split("'")
    return "'".join(part if index % 2 else part.lower() for index, part in enumerate(parts))


def canonical_path(path: str) -> str:
    match = _API.search(path)
    if match is None:
        return path
    site, rest = path[: match.start()], lower_outside_quotes(path[match.start() :])
    for pattern, replacement in _ALIASES:
        rest = pattern.sub(replacement, rest)
    rest = _BARE_FILE_METHOD.sub(r"\1()", rest)
    return site + rest.rstrip("/")


class SharePointPaths:
    """ASGI middleware: canonical `_api` paths and the verb an `X-HTTP-Method` header names."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and _API.search(scope["path"]):
            scope = dict(scope)
            scope["path"] = canonical_path(scope["path"])
            scope["raw_path"] = quote(scope["path"], safe="/'(),=:@!$*+;~").encode()
            tunnelled = _header(scope, b"x-http-method")
            if scope["method"] == "POST" and tunnelled and tunnelled.upper() in _TUNNELLED:
                scope["method"] = _TUNNELLED[tunnelled.upper()]
        await self.app(scope, receive, send)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None
