"""Access tokens for SharePoint REST.

In Azure: the app's managed identity (granted `Sites.Selected` + site `Manage`) or an Entra app
with a certificate; SharePoint refuses client secrets for app-only REST. Locally: the emulator's
token endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from azure.identity import CertificateCredential, ManagedIdentityCredential

from .outbound import new_session, send
from .settings import Settings, SettingsError

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

# The audience of a token for a Teams workflow's HTTP trigger that requires Entra authentication.
# With its trailing slash: the scope is then `https://service.flow.microsoft.com//.default`, the
# only form whose token carries the `aud` the trigger checks (else "MisMatchingOAuthClaims").
POWER_AUTOMATE_RESOURCE = "https://service.flow.microsoft.com/"
# Refresh a little before expiry so a token never runs out mid-request.
_EXPIRY_MARGIN_SECONDS = 300


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
        response = send(
            self._session,
            "POST",
            self._url,
            service="emulator",
            operation="token",
            json={"grant_type": "client_credentials", "scope": "emulator/.default"},
        )
        body = response.json()
        return body["access_token"], time.time() + float(body["expires_in"])


def token_provider_for(settings: Settings, resource: str | None = None) -> TokenProvider:
    """Tokens for `resource` (default: the SharePoint tenant; Graph: settings.graph_base_url)."""
    if settings.sharepoint_auth == "emulator":
        return EmulatorTokenProvider(settings.sharepoint_tenant_url)
    return AzureIdentityTokenProvider(settings, resource or settings.sharepoint_tenant_url)


def _required(value: str | None, name: str) -> str:
    if not value:
        raise SettingsError(f"{name} is required when SHAREPOINT_AUTH=certificate")
    return value
