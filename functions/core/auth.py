"""Access tokens for SharePoint REST and Microsoft Graph.

In Azure: the app's managed identity (granted `Sites.Selected` + site `Manage`) or an Entra app
with a certificate; SharePoint refuses client secrets for app-only REST. Locally: the emulator's
token endpoint. With many tenants (TENANCY=multi), a guest tenant's tokens are the multi-tenant
app's, asked of that tenant's authority with the managed identity's federated token as the client
assertion (or the app's certificate): no secret anywhere.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlencode

from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ManagedIdentityCredential

from .errors import Conflict
from .outbound import UpstreamError, new_session, send
from .settings import Settings, SettingsError
from .tenancy import acting_tenant

if TYPE_CHECKING:
    import requests
    from azure.core.credentials import TokenCredential

# The audience of a token for a Teams workflow's HTTP trigger that requires Entra authentication.
# With its trailing slash: the scope is then `https://service.flow.microsoft.com//.default`, the
# only form whose token carries the `aud` the trigger checks (else "MisMatchingOAuthClaims").
POWER_AUTOMATE_RESOURCE = "https://service.flow.microsoft.com/"
# Refresh a little before expiry so a token never runs out mid-request.
_EXPIRY_MARGIN_SECONDS = 300
# The audience of a managed identity's token that a federated identity credential accepts.
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"  # noqa: S105 - an audience, not a secret
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# What the identity platform answers when a tenant no longer lets the app in: the app is not in
# its directory (consent never given, or its service principal deleted), disabled there, or the
# consent for the permission is gone. Anything else (a network error, a 5xx) is weather.
CONSENT_GONE_CODES = frozenset({"AADSTS700016", "AADSTS7000112", "AADSTS65001"})
_AADSTS = re.compile(r"AADSTS\d+")


class TokenProvider(Protocol):
    def get_token(self) -> str: ...


class _CachedToken:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_on = 0.0

    def get(self, fetch: Callable[[], tuple[str, float]]) -> str:
        with self._lock:
            if self._token is None or time.time() > self._expires_on - _EXPIRY_MARGIN_SECONDS:
                self._token, self._expires_on = fetch()
            return self._token


class AzureIdentityTokenProvider:
    """Managed identity or certificate credential from azure-identity, for one resource's
    `.default` scope (the SharePoint tenant, or Microsoft Graph)."""

    def __init__(self, settings: Settings, resource: str) -> None:
        self._settings = settings
        self._scope = f"{resource}/.default"
        self._credential: TokenCredential | None = None
        self._cache = _CachedToken()

    def get_token(self) -> str:
        return self._cache.get(self._fetch)

    def _fetch(self) -> tuple[str, float]:
        if self._credential is None:
            self._credential = self._build_credential()
        token = self._credential.get_token(self._scope)
        return token.token, float(token.expires_on)

    def _build_credential(self) -> TokenCredential:
        settings = self._settings
        if settings.sharepoint_auth == "certificate":
            return CertificateCredential(
                tenant_id=_required(settings.sharepoint_tenant_id, "SHAREPOINT_TENANT_ID"),
                client_id=_required(settings.sharepoint_client_id, "SHAREPOINT_CLIENT_ID"),
                certificate_path=settings.sharepoint_certificate_path,
            )

        return ManagedIdentityCredential(client_id=settings.sharepoint_client_id)


class EmulatorTokenProvider:
    """The local Microsoft 365 emulator issues short-lived bearer tokens at `/_emulator/token`."""

    def __init__(self, tenant_url: str) -> None:
        self._url = f"{tenant_url}/_emulator/token"
        self._session = new_session()
        self._cache = _CachedToken()

    def get_token(self) -> str:
        return self._cache.get(self._fetch)

    def _fetch(self) -> tuple[str, float]:
        grant = {"grant_type": "client_credentials", "scope": "emulator/.default"}
        return _emulator_token(self._session, self._url, "token", grant)


class TenantRefused(Conflict):
    """A guest tenant's authority refuses the app: its consent is gone (revoked, or the app
    removed from the directory). Reads and renewals for that tenant stop until it consents again."""

    def __init__(self, tenant_id: str, code: str, message: str) -> None:
        super().__init__(f"tenant {tenant_id} refused the app: {message if code in message else code}")
        self.tenant_id = tenant_id
        self.code = code


class GuestTokens:
    """The multi-tenant app's tokens in each tenant that consented, cached per tenant and
    audience and asked again before expiry; `fetch` asks a tenant's authority for one."""

    def __init__(self, fetch: Callable[[str, str], tuple[str, float]]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._caches: dict[tuple[str, str], _CachedToken] = {}

    def token(self, tenant_id: str, resource: str) -> str:
        with self._lock:
            cache = self._caches.setdefault((tenant_id, resource), _CachedToken())
        return cache.get(lambda: self._fetch(tenant_id, resource))

    def forget(self, tenant_id: str) -> None:
        """Drop a tenant's tokens (its consent was revoked, or it was removed)."""
        with self._lock:
            for key in [key for key in self._caches if key[0] == tenant_id]:
                del self._caches[key]


class FederatedExchange:
    """Client credentials with a client assertion (the managed identity's federated token),
    against the guest tenant's authority.

    Asked here rather than through azure-identity's ClientAssertionCredential so that the identity
    platform's answer is read whole: its AADSTS code is what tells a revoked consent (the tenant
    turns `revoked`) from a passing failure, and the call goes through the one outbound path
    (timeout, bounded retries after Retry-After, a log line naming the tenant)."""

    def __init__(self, settings: Settings, assertion: Callable[[], str]) -> None:
        self._authority = settings.login_authority
        self._client_id = _required(settings.multi_tenant_app_id, "MULTI_TENANT_APP_ID")
        self._assertion = assertion
        self._session = new_session()

    def __call__(self, tenant_id: str, resource: str) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "scope": f"{resource.rstrip('/')}/.default",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self._assertion(),
        }
        try:
            response = send(
                self._session,
                "POST",
                f"{self._authority}/{tenant_id}/oauth2/v2.0/token",
                service="login",
                operation=f"token for tenant {tenant_id}",
                data=urlencode(form).encode("ascii"),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
        except UpstreamError as error:
            if error.code in CONSENT_GONE_CODES:
                raise TenantRefused(tenant_id, error.code or "", error.upstream_message) from None
            raise
        body = response.json()
        return body["access_token"], time.time() + float(body["expires_in"])


class CertificateExchange:
    """Where federated credentials are not offered (some sovereign clouds): the multi-tenant
    app's certificate, from Key Vault, asked of each tenant's authority by azure-identity."""

    def __init__(self, settings: Settings) -> None:
        self._credential = CertificateCredential(
            tenant_id=_required(settings.sharepoint_tenant_id, "SHAREPOINT_TENANT_ID"),
            client_id=_required(settings.multi_tenant_app_id, "MULTI_TENANT_APP_ID"),
            certificate_path=settings.multi_tenant_certificate_path,
            additionally_allowed_tenants=["*"],
        )

    def __call__(self, tenant_id: str, resource: str) -> tuple[str, float]:
        try:
            token = self._credential.get_token(f"{resource.rstrip('/')}/.default", tenant_id=tenant_id)
        except ClientAuthenticationError as error:
            found = _AADSTS.search(str(error))
            if found and found.group(0) in CONSENT_GONE_CODES:
                raise TenantRefused(tenant_id, found.group(0), f"{found.group(0)} (see the log)") from None
            raise
        return token.token, float(token.expires_on)


class TenantTokens:
    """Tokens for whichever tenant the current unit of work acts for (tenancy.acting_for): the
    home tenant's from its own provider, a guest's from the multi-tenant app. `resource` None
    means SharePoint, whose audience is the acting tenant's SharePoint root."""

    def __init__(self, home: TokenProvider, guests: GuestTokens | None, resource: str | None) -> None:
        self._home = home
        self._guests = guests
        self._resource = resource

    def get_token(self) -> str:
        tenant = acting_tenant()
        if tenant is None or tenant.home or self._guests is None:
            return self._home.get_token()
        return self._guests.token(tenant.id, self._resource or tenant.sharepoint_url)


def guest_tokens_for(settings: Settings) -> GuestTokens | None:
    """The multi-tenant app's tokens, or None in a single-tenant deployment."""
    if not settings.multi_tenant:
        return None
    if settings.sharepoint_auth == "emulator":
        assertion = EmulatorManagedIdentity(settings.sharepoint_tenant_url).assertion
        return GuestTokens(FederatedExchange(settings, assertion))
    if settings.multi_tenant_certificate_path:
        return GuestTokens(CertificateExchange(settings))
    assertion = ManagedIdentityAssertion(settings.sharepoint_client_id).assertion
    return GuestTokens(FederatedExchange(settings, assertion))


class ManagedIdentityAssertion:
    """The Function app's managed identity's token for the token exchange: the client assertion
    a federated identity credential of the multi-tenant app accepts."""

    def __init__(self, client_id: str | None) -> None:
        self._credential = ManagedIdentityCredential(client_id=client_id)
        self._cache = _CachedToken()

    def assertion(self) -> str:
        return self._cache.get(self._fetch)

    def _fetch(self) -> tuple[str, float]:
        token = self._credential.get_token(f"{TOKEN_EXCHANGE_AUDIENCE}/.default")
        return token.token, float(token.expires_on)


class EmulatorManagedIdentity:
    """Locally, the emulator plays the managed identity: a signed token for the token exchange."""

    def __init__(self, tenant_url: str) -> None:
        self._url = f"{tenant_url}/_emulator/managed-identity/token"
        self._session = new_session()
        self._cache = _CachedToken()

    def assertion(self) -> str:
        return self._cache.get(self._fetch)

    def _fetch(self) -> tuple[str, float]:
        return _emulator_token(
            self._session, self._url, "managed identity token", {"resource": TOKEN_EXCHANGE_AUDIENCE}
        )


def token_provider_for(
    settings: Settings, resource: str | None = None, guests: GuestTokens | None = None
) -> TokenProvider:
    """Tokens for `resource` (default: SharePoint; Graph: settings.graph_base_url), for the tenant
    the current unit of work acts for (guest tenants only with `guests`)."""
    home: TokenProvider
    if settings.sharepoint_auth == "emulator":
        home = EmulatorTokenProvider(settings.sharepoint_tenant_url)
    else:
        home = AzureIdentityTokenProvider(settings, resource or settings.sharepoint_tenant_url)
    return home if guests is None else TenantTokens(home, guests, resource)


def _emulator_token(
    session: requests.Session, url: str, operation: str, request: dict[str, str]
) -> tuple[str, float]:
    """A token of the local emulator's and when it expires."""
    response = send(session, "POST", url, service="emulator", operation=operation, json=request)
    body = response.json()
    return body["access_token"], time.time() + float(body["expires_in"])


def _required(value: str | None, name: str) -> str:
    if not value:
        raise SettingsError(f"{name} is required when SHAREPOINT_AUTH=certificate")
    return value
