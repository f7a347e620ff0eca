"""`/_emulator/` for Teams, and the emulator's stand-in for the identity platform's published keys.

POST /_emulator/teams {"displayName", "channels": [...]}: a team with its channels.
POST /_emulator/teams/faults {"fault": one of RICH_FAULTS, "times": 1}: spoil the next rich POSTs.
POST /_emulator/graph/permissions {"appId", "roles": [...]}: what a tenant admin granted the app.
POST /_emulator/teams/validation-token {"appId"}: the token Graph would attach now, and its tenant.
POST /_emulator/teams/{team}/consent and /_emulator/chats/{chat}/consent {"appId"}: resource-specific consent.
GET  /common/discovery/v2.0/keys: the JWKS validation tokens are signed with.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..directory import tenant_of
from ..tokens import DEFAULT_APP_ID
from .errors import GraphError
from .rich import KEYS_PATH
from .state import GraphTenant
from .teams_model import RICH_FAULTS, TEAMS_APP_ROLES


def _graph(request: Request) -> GraphTenant:
    return tenant_of(request).graph


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    body = await request.json()
    return body if isinstance(body, dict) else {}


async def create_team(request: Request) -> Response:
    body = await _json(request)
    graph = _graph(request)
    team = graph.teams.add_team(
        str(body.get("displayName") or "Team"),
        list(body.get("channels") or []),
        tenant_of(request).clock.now(),
    )
    channels = {c.display_name: c.id for c in team.channels.values()}
    return JSONResponse({"id": team.id, "channels": channels}, status_code=201)


async def rich_faults(request: Request) -> Response:
    body = await _json(request)
    fault = body.get("fault")
    if fault not in RICH_FAULTS:
        return JSONResponse({"error": f"fault must be one of {', '.join(RICH_FAULTS)}"}, 400)
    _graph(request).teams.faults[fault] += int(body.get("times", 1))
    return JSONResponse({"fault": fault, "times": _graph(request).teams.faults[fault]}, 201)


async def permissions(request: Request) -> Response:
    body = await _json(request)
    roles = body.get("roles")
    if not isinstance(roles, list) or any(role not in TEAMS_APP_ROLES for role in roles):
        return JSONResponse({"error": f"roles must be a list of {', '.join(TEAMS_APP_ROLES)}"}, 400)
    app_id = str(body.get("appId") or DEFAULT_APP_ID)
    _graph(request).teams.app_roles[app_id] = set(roles)
    return JSONResponse({"appId": app_id, "roles": sorted(roles)})


async def consent(request: Request) -> Response:
    body = await _json(request)
    app_id = str(body.get("appId") or DEFAULT_APP_ID)
    teams = _graph(request).teams
    try:
        if "team" in request.path_params:
            teams.team(request.path_params["team"]).consented_apps.add(app_id)
        else:
            teams.chat(request.path_params["chat"]).consented_apps.add(app_id)
    except GraphError as error:
        return JSONResponse({"error": str(error)}, 404)
    return Response(status_code=204)


async def validation_token(request: Request) -> Response:
    """The validation token Graph would attach for `appId` now, and the tenant it names (for a
    test or a benchmark that posts rich notifications itself)."""
    body = await _json(request)
    graph = _graph(request)
    app_id = str(body.get("appId") or DEFAULT_APP_ID)
    return JSONResponse(
        {"token": graph.signing_key.validation_token(app_id, graph.tenant_id), "tenantId": graph.tenant_id}
    )


async def signing_keys(request: Request) -> Response:
    tenant_of(request).calls["IdentitySigningKeys"] += 1
    return JSONResponse(_graph(request).signing_key.jwks())


routes = [
    Route("/_emulator/teams", create_team, methods=["POST"]),
    Route("/_emulator/teams/faults", rich_faults, methods=["POST"]),
    Route("/_emulator/graph/permissions", permissions, methods=["POST"]),
    Route("/_emulator/teams/{team}/consent", consent, methods=["POST"]),
    Route("/_emulator/chats/{chat:path}/consent", consent, methods=["POST"]),
    Route("/_emulator/teams/validation-token", validation_token, methods=["POST"]),
    Route(KEYS_PATH, signing_keys, methods=["GET"]),
]
