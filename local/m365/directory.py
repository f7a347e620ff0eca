"""The tenants the emulator hosts, and what Entra ID knows across them: app registrations (a
multi-tenant app with its redirect URIs and federated identity credentials), which tenants have
consented to which app, and the managed identity whose tokens the federated credential trusts.

The first tenant is the home tenant, served at the emulator's root as before; each other one is
served under `/_tenants/{id}` (its SharePoint root, its `/_emulator/` control surface). Graph is
one host for every tenant: a Graph request acts in the tenant that issued its bearer token.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .tenant import Tenant

TENANT_PREFIX = "/_tenants/"
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


@dataclass
class FederatedCredential:
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (TOKEN_EXCHANGE_AUDIENCE,)


@dataclass
class AppRegistration:
    app_id: str
    redirect_uris: tuple[str, ...]
    federated_credentials: list[FederatedCredential] = field(default_factory=list)


class Directory:
    def __init__(self, home: Tenant) -> None:
        self.home = home
        self.tenants: dict[str, Tenant] = {home.tenant_id: home}
        self.apps: dict[str, AppRegistration] = {}
        # tenant id -> app ids with a service principal there (consented).
        self.consents: dict[str, set[str]] = {}
        # tenant id -> how its administrator answers a consent prompt ("accept" or "deny").
        self.consent_answers: dict[str, str] = {}
        # The Function app's managed identity, living in the home tenant.
        self.identity_object_id = str(uuid.uuid4())
        self._identity_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.on_added: list[Callable[[Tenant], None]] = []

    @property
    def identity_issuer(self) -> str:
        return f"https://login.microsoftonline.com/{self.home.tenant_id}/v2.0"

    def add(self, display_name: str) -> Tenant:
        # The identity platform signs every tenant's validation tokens with the keys it publishes.
        tenant = Tenant(signing_key=self.home.graph.signing_key)
        tenant.display_name = display_name
        self.tenants[tenant.tenant_id] = tenant
        for started in self.on_added:
            started(tenant)
        return tenant

    def sharepoint_url(self, tenant: Tenant, request: Request) -> str:
        """A tenant's SharePoint root: the emulator's own for the home tenant."""
        origin = f"{request.url.scheme}://{request.url.netloc}"
        return origin if tenant is self.home else f"{origin}{TENANT_PREFIX}{tenant.tenant_id}"

    def tenant_of_token(self, token: str) -> Tenant | None:
        now = time.time()
        for tenant in self.tenants.values():
            if tenant.tokens.app_of(token, now) is not None:
                return tenant
        return None

    def identity_token(self) -> tuple[str, int]:
        """The managed identity's token for the token exchange, as Entra ID signs it."""
        now = int(time.time())
        lifetime = 3600
        claims = {
            "iss": self.identity_issuer,
            "sub": self.identity_object_id,
            "aud": TOKEN_EXCHANGE_AUDIENCE,
            "oid": self.identity_object_id,
            "tid": self.home.tenant_id,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
        }
        return jwt.encode(
            claims, self._identity_key, algorithm="RS256", headers={"kid": "emulator-mi"}
        ), lifetime

    def verified_assertion(self, assertion: str) -> dict[str, object] | None:
        """The claims of a client assertion this directory signed and that has not expired."""
        public = self._identity_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:
            return jwt.decode(assertion, public, algorithms=["RS256"], options={"verify_aud": False})
        except jwt.PyJWTError:
            return None


def tenant_of(request: Request) -> Tenant:
    """The tenant a request acts in (TenantRouting put it there; the home tenant otherwise)."""
    tenant = request.scope.get("m365.tenant")
    return tenant if isinstance(tenant, Tenant) else request.app.state.tenant


_GRAPH_PATHS = ("/v1.0/", "/beta/")


class TenantRouting:
    """Picks the tenant of each request, before any route: a guest's `/_tenants/{id}` prefix
    (served as its root, so every URL the routes write carries it), or for Graph the tenant that
    issued the bearer token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            directory: Directory = scope["app"].state.directory
            path: str = scope["path"]
            if path.startswith(TENANT_PREFIX):
                tenant_id = path[len(TENANT_PREFIX) :].partition("/")[0]
                tenant = directory.tenants.get(tenant_id)
                if tenant is None or tenant is directory.home:
                    await PlainTextResponse(f"no tenant {tenant_id}", 404)(scope, receive, send)
                    return
                root = f"{scope.get('root_path', '')}{TENANT_PREFIX}{tenant_id}"
                scope = {**scope, "root_path": root, "m365.tenant": tenant}
            elif path.startswith(_GRAPH_PATHS):
                token = _bearer(scope)
                owner = directory.tenant_of_token(token) if token else None
                if owner is not None:
                    scope = {**scope, "m365.tenant": owner}
        await self.app(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            kind, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if kind.lower() == "bearer" else None
    return None
