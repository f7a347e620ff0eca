"""Entra ID's endpoints as a multi-tenant app meets them: admin consent, client credentials with
a client assertion (a federated identity credential), and the managed identity's token that is
that assertion; with the identity platform's error shapes and AADSTS codes.

`/_emulator/` routes register the app and steer each tenant's administrator (under a guest's
`/_tenants/{id}`, that tenant's); not Entra ID's."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .directory import AppRegistration, Directory, FederatedCredential, tenant_of
from .tokens import TOKEN_LIFETIME_SECONDS

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRAPH_RESOURCE = "https://graph.microsoft.com"


def directory_of(request: Request) -> Directory:
    return request.app.state.directory


def _aad_error(status: int, error: str, code: int, description: str) -> JSONResponse:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    trace = str(uuid.uuid4())
    return JSONResponse(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Timestamp: {now}",
            "error_codes": [code],
            "timestamp": now,
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
            "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        },
        status,
    )


async def token(request: Request) -> Response:
    """`POST /{tenant}/oauth2/v2.0/token`: client credentials, authenticated by a client
    assertion that must match one of the app's federated identity credentials."""
    directory = directory_of(request)
    tenant_id = request.path_params["tenant"]
    tenant = directory.tenants.get(tenant_id)
    if tenant is None:
        return _aad_error(400, "invalid_request", 90002, f"Tenant '{tenant_id}' not found.")
    # The identity platform reads a form body only; anything else has no grant_type.
    is_form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
    raw = (await request.body()).decode("utf-8", "replace") if is_form else ""
    form = {name: values[0] for name, values in parse_qs(raw).items()}
    if "grant_type" not in form:
        missing = "The request body must contain the following parameter: 'grant_type'."
        return _aad_error(400, "invalid_request", 900144, missing)
    grant = form.get("grant_type")
    if grant != "client_credentials":
        return _aad_error(
            400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
        )
    app_id = str(form.get("client_id") or "")
    app = directory.apps.get(app_id)
    not_found = (
        f"Application with identifier '{app_id}' was not found in the directory '{tenant.display_name}'. "
        "This can happen if the application has not been installed by the administrator of the tenant or "
        "consented to by any user in the tenant. You may have sent your authentication request to the "
        "wrong tenant."
    )
    if app is None:
        return _aad_error(400, "unauthorized_client", 700016, not_found)
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE or not form.get("client_assertion"):
        return _aad_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    claims = directory.verified_assertion(str(form["client_assertion"]))
    if claims is None:
        return _aad_error(400, "invalid_request", 50027, "JWT token is invalid or malformed.")
    matched = any(
        credential.issuer == claims.get("iss")
        and credential.subject == claims.get("sub")
        and claims.get("aud") in credential.audiences
        for credential in app.federated_credentials
    )
    if not matched:
        return _aad_error(
            400,
            "invalid_request",
            70021,
            "No matching federated identity record found for presented assertion. "
            f"Assertion Issuer: '{claims.get('iss')}'. Assertion Subject: '{claims.get('sub')}'. "
            f"Assertion Audience: '{claims.get('aud')}'.",
        )
    if app_id not in directory.consents.get(tenant_id, set()):
        return _aad_error(400, "unauthorized_client", 700016, not_found)
    scope = str(form.get("scope") or "")
    if not scope.endswith("/.default") or " " in scope:
        return _aad_error(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
            "value with /.default suffixed to the resource identifier (application ID URI).",
        )
    resource = scope.removesuffix("/.default")
    # Graph is the emulator's own root locally (GRAPH_BASE_URL), as well as its real name.
    graph_here = f"{request.url.scheme}://{request.url.netloc}"
    if resource not in (GRAPH_RESOURCE, graph_here, directory.sharepoint_url(tenant, request)):
        return _aad_error(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{tenant.display_name}.",
        )
    issued = tenant.tokens.issue(time.time(), app_id, audience=resource)
    return JSONResponse(
        {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_SECONDS,
            "ext_expires_in": TOKEN_LIFETIME_SECONDS,
            "access_token": issued,
        }
    )


async def admin_consent(request: Request) -> Response:
    """`GET /{tenant}/v2.0/adminconsent`: the administrator answers (as steered), and the browser
    is sent back to the redirect URI."""
    directory = directory_of(request)
    tenant = directory.tenants.get(request.path_params["tenant"])
    params = request.query_params
    app = directory.apps.get(params.get("client_id", ""))
    if tenant is None:
        return PlainTextResponse(f"AADSTS90002: Tenant '{request.path_params['tenant']}' not found.", 400)
    if app is None:
        return PlainTextResponse(
            f"AADSTS700016: Application with identifier '{params.get('client_id')}' was not found in the "
            f"directory '{tenant.display_name}'.",
            400,
        )
    redirect = params.get("redirect_uri", "")
    if redirect not in app.redirect_uris:
        return PlainTextResponse(
            f"AADSTS50011: The redirect URI '{redirect}' specified in the request does not match the "
            f"redirect URIs configured for the application '{app.app_id}'.",
            400,
        )
    state = params.get("state")
    if directory.consent_answers.get(tenant.tenant_id, "accept") == "deny":
        answer = {
            "error": "access_denied",
            "error_subcode": "cancel",
            "error_description": "AADSTS65004: User declined to consent to access the app.",
        }
    else:
        directory.consents.setdefault(tenant.tenant_id, set()).add(app.app_id)
        answer = {"admin_consent": "True", "tenant": tenant.tenant_id, "scope": params.get("scope", "")}
    if state is not None:
        answer["state"] = state
    return RedirectResponse(f"{redirect}?{urlencode(answer)}", status_code=302)


async def identity_token(request: Request) -> Response:
    """The Function app's managed identity: its token for `api://AzureADTokenExchange`."""
    issued, lifetime = directory_of(request).identity_token()
    return JSONResponse({"token_type": "Bearer", "expires_in": lifetime, "access_token": issued})


async def identity(request: Request) -> Response:
    directory = directory_of(request)
    return JSONResponse({"issuer": directory.identity_issuer, "subject": directory.identity_object_id})


async def add_tenant(request: Request) -> Response:
    body = await request.json()
    directory = directory_of(request)
    tenant = directory.add(str(body.get("displayName") or "Fabrikam"))
    return JSONResponse(
        {
            "id": tenant.tenant_id,
            "displayName": tenant.display_name,
            "sharePointUrl": directory.sharepoint_url(tenant, request),
        },
        201,
    )


async def add_app(request: Request) -> Response:
    """`{"appId", "redirectUris": [...], "federatedCredentials": [{"issuer", "subject", "audiences"}]}`."""
    body = await request.json()
    app = AppRegistration(
        app_id=str(body["appId"]),
        redirect_uris=tuple(body.get("redirectUris", ())),
        federated_credentials=[
            FederatedCredential(str(c["issuer"]), str(c["subject"]), tuple(c.get("audiences", ())))
            for c in body.get("federatedCredentials", ())
        ],
    )
    directory_of(request).apps[app.app_id] = app
    return JSONResponse({"appId": app.app_id}, 201)


async def steer_consent(request: Request) -> Response:
    """`{"answer": "accept" | "deny"}`: how this tenant's administrator answers a prompt."""
    body = await request.json()
    answer = body.get("answer")
    if answer not in ("accept", "deny"):
        return JSONResponse({"error": "answer must be accept or deny"}, 400)
    directory_of(request).consent_answers[tenant_of(request).tenant_id] = answer
    return Response(status_code=204)


async def revoke_consent(request: Request) -> Response:
    """`{"appId"}`: the administrator deletes the app's service principal: its tokens stop
    working, and the token endpoint refuses it (AADSTS700016)."""
    body = await request.json()
    directory = directory_of(request)
    tenant = tenant_of(request)
    app_id = str(body.get("appId"))
    directory.consents.get(tenant.tenant_id, set()).discard(app_id)
    tenant.tokens.revoke_app(app_id)
    return Response(status_code=204)


routes = [
    Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
    Route("/{tenant}/v2.0/adminconsent", admin_consent, methods=["GET"]),
    Route("/_emulator/managed-identity/token", identity_token, methods=["POST"]),
    Route("/_emulator/managed-identity", identity, methods=["GET"]),
    Route("/_emulator/tenants", add_tenant, methods=["POST"]),
    Route("/_emulator/apps", add_app, methods=["POST"]),
    Route("/_emulator/consent", steer_consent, methods=["POST"]),
    Route("/_emulator/consent/revoke", revoke_consent, methods=["POST"]),
]
