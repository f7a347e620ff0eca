"""The production token providers, with fake azure-identity credentials in place of Entra ID."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from functions.core.auth import AzureIdentityTokenProvider, EmulatorTokenProvider, token_provider_for
from functions.core.settings import Settings

TENANT = "https://contoso.sharepoint.com"
BASE = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "NOTIFICATION_BASE_URL": "https://app.example",
    "SHAREPOINT_TENANT_URL": TENANT,
}


@dataclass
class FakeCredential:
    """Records how it was built and what it was asked for; hands out numbered tokens."""

    built_with: dict[str, Any]
    lifetime: float = 3600
    scopes: list[tuple[str, ...]] = field(default_factory=list)

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(f"token-{len(self.scopes)}", int(time.time() + self.lifetime))


@pytest.fixture
def credentials(monkeypatch) -> list[FakeCredential]:
    built: list[FakeCredential] = []

    def factory(kind: str):
        def build(**kwargs: Any) -> FakeCredential:
            built.append(FakeCredential({"kind": kind, **kwargs}))
            return built[-1]

        return build

    monkeypatch.setattr("functions.core.auth.ManagedIdentityCredential", factory("managed_identity"))
    monkeypatch.setattr("functions.core.auth.CertificateCredential", factory("certificate"))
    return built


def test_managed_identity_asks_for_the_tenants_default_scope_with_the_apps_client_id(credentials):
    settings = Settings.from_environ(
        {**BASE, "SHAREPOINT_AUTH": "managed_identity", "SHAREPOINT_CLIENT_ID": "cid"}
    )
    provider = token_provider_for(settings)
    assert isinstance(provider, AzureIdentityTokenProvider)
    assert provider.get_token() == "token-1"
    [credential] = credentials
    assert credential.built_with == {"kind": "managed_identity", "client_id": "cid"}
    assert credential.scopes == [(f"{TENANT}/.default",)]


def test_a_certificate_credential_is_built_from_the_tenant_client_and_certificate(credentials):
    settings = Settings.from_environ(
        {
            **BASE,
            "SHAREPOINT_AUTH": "certificate",
            "SHAREPOINT_CLIENT_ID": "cid",
            "SHAREPOINT_TENANT_ID": "tid",
            "SHAREPOINT_CERTIFICATE_PATH": "/certs/app.pem",
        }
    )
    assert token_provider_for(settings).get_token() == "token-1"
    assert credentials[0].built_with == {
        "kind": "certificate",
        "tenant_id": "tid",
        "client_id": "cid",
        "certificate_path": "/certs/app.pem",
    }


def test_a_token_is_reused_until_it_nears_expiry_and_the_credential_is_built_once(credentials):
    provider = AzureIdentityTokenProvider(
        Settings.from_environ({**BASE, "SHAREPOINT_AUTH": "managed_identity"}), TENANT
    )
    assert [provider.get_token() for _ in range(3)] == ["token-1"] * 3
    credentials[0].lifetime = 60  # the next token expires inside the refresh margin
    provider._cache._expires_on = 0  # force a refresh now
    assert provider.get_token() == "token-2"
    assert provider.get_token() == "token-3"
    assert len(credentials) == 1


def test_the_emulator_mode_takes_tokens_from_the_emulator():
    provider = token_provider_for(Settings.from_environ({**BASE, "SHAREPOINT_AUTH": "emulator"}))
    assert isinstance(provider, EmulatorTokenProvider)


def test_graph_tokens_come_from_the_same_identity_with_graphs_default_scope(credentials):
    settings = Settings.from_environ(
        {**BASE, "SHAREPOINT_AUTH": "managed_identity", "SHAREPOINT_CLIENT_ID": "cid"}
    )
    assert token_provider_for(settings, settings.graph_base_url).get_token() == "token-1"
    assert credentials[0].scopes == [("https://graph.microsoft.com/.default",)]
    assert credentials[0].built_with == {"kind": "managed_identity", "client_id": "cid"}
