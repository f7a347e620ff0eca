"""Delta queries as Graph pages them: `@odata.nextLink` while more follow, then `@odata.deltaLink`,
links that carry their own state, and what an expired link answers."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import GraphError, bad_request
from .model import DEFAULT_PAGE_SIZE, Journal
from .state import GraphTenant

# What `$select` may name on a delta query, by type; Graph refuses any other name.
DRIVE_ITEM_PROPERTIES = (
    "driveItem",
    frozenset(
        {
            "id", "name", "size", "eTag", "cTag", "createdDateTime", "lastModifiedDateTime", "createdBy",
            "lastModifiedBy", "parentReference", "file", "folder", "deleted", "root", "webUrl",
        }
    ),
)  # fmt: skip
MESSAGE_PROPERTIES = (
    "message",
    frozenset(
        {
            "id", "subject", "from", "sender", "toRecipients", "ccRecipients", "receivedDateTime",
            "sentDateTime", "isRead", "isDraft", "importance", "body", "bodyPreview", "categories",
            "conversationId", "createdDateTime", "lastModifiedDateTime", "parentFolderId",
            "hasAttachments", "internetMessageId", "webLink", "changeKey", "flag",
        }
    ),
)  # fmt: skip
# Returned whatever `$select` says: the id, OData annotations, and what marks a removal.
ALWAYS = frozenset({"id", "deleted"})


def _selection(request: Request, selectable: tuple[str, frozenset[str]] | None) -> list[str] | None:
    raw = request.query_params.get("$select")
    if raw is None or selectable is None:
        return None
    type_name, known = selectable
    names = [name.strip() for name in raw.split(",") if name.strip()]
    for name in names:
        if name not in known:
            raise GraphError(
                400,
                "BadRequest",
                f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
            )
    return names


def _project(body: dict[str, Any], selected: list[str] | None) -> dict[str, Any]:
    if selected is None:
        return body
    return {
        key: value for key, value in body.items() if key in selected or key in ALWAYS or key.startswith("@")
    }


def max_page_size(request: Request) -> int:
    match = re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("Prefer", ""))
    return int(match.group(1)) if match else DEFAULT_PAGE_SIZE


def delta_page(
    request: Request,
    graph: GraphTenant,
    collection: str,
    objects: dict[str, Any],
    journal: Journal,
    base: str,
    size: int,
    render: Callable[[str], dict[str, Any]],
    param: str = "$deltatoken",
    window: dict[str, str] | None = None,
    selectable: tuple[str, frozenset[str]] | None = None,
) -> Response:
    """One page of a delta round: `@odata.nextLink` while more follow, else `@odata.deltaLink`
    (never both). A link from before the tokens expired answers 410 with a `Location` to start
    over from (the same window, for a calendar)."""
    query = request.query_params
    link = query.get("$skiptoken") or query.get(param)
    state: dict[str, Any]
    # A `$select` on the first request holds for the whole round and every round after: Graph keeps
    # it in the links it hands out.
    selected = _selection(request, selectable)
    if link == "latest":
        state = {"since": graph.sequence, "upto": graph.sequence, "offset": 0, "w": window, "s": selected}
        latest = delta_link(graph, base, param, collection, state)
        return JSONResponse({"value": [], "@odata.deltaLink": latest})
    if link is None:
        state = {"since": None, "upto": graph.sequence, "offset": 0, "w": window, "s": selected}
    else:
        state = _read_link(graph, link, collection)
        if state["g"] != graph.delta_generation:
            restart = base + (
                f"?startDateTime={state['w']['start']}&endDateTime={state['w']['end']}"
                if state.get("w")
                else ""
            )
            status, code = graph.outlook_expiry if not collection.startswith("drive:") else (410, "")
            if status != 410:
                raise GraphError(status, code, "The sync state is not valid any more; start a new round.")
            raise GraphError(
                410,
                "resyncRequired",
                "Resync required. Replace any local items with the server's version (including deletes) if "
                "you're sure that the service was up to date with your local changes when you last sync'd.",
                {"Location": restart},
            )
        if "$skiptoken" not in query:  # a delta link: a new round from where the last one ended
            state = {
                "since": state["upto"],
                "upto": graph.sequence,
                "offset": 0,
                "w": state.get("w"),
                "s": state.get("s"),
            }
    ids, more = graph.delta_page(objects, journal, state["since"], state["upto"], state["offset"], size)
    body: dict[str, Any] = {"value": [_project(render(object_id), state.get("s")) for object_id in ids]}
    if more:
        following = {**state, "offset": state["offset"] + size}
        body["@odata.nextLink"] = delta_link(graph, base, "$skiptoken", collection, following)
    else:
        body["@odata.deltaLink"] = delta_link(graph, base, param, collection, state)
    return JSONResponse(body)


def delta_link(graph: GraphTenant, base: str, param: str, collection: str, state: dict[str, Any]) -> str:
    raw = json.dumps({**state, "c": collection, "g": graph.delta_generation}).encode()
    return f"{base}?{param}={base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


def _read_link(graph: GraphTenant, token: str, collection: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(state, dict) or state.get("c") != collection:
            raise ValueError
        int(state["g"]), int(state["upto"]), int(state["offset"])
    except (ValueError, KeyError, TypeError):
        raise bad_request("The delta or skip token is not valid for this resource.", "badRequest") from None
    return state
