"""The tenants API's wire shapes, and the identity platform's consent answer."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, field_validator

from ..models import TenantId, WireModel

_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class CreateTenantRequest(WireModel):
    """`POST /api/tenants`: an organisation to serve once its administrator consents."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    tenant_id: TenantId = Field(alias="tenantId")
    display_name: str = Field(alias="displayName", min_length=1, max_length=256)
    # Its SharePoint root, e.g. https://fabrikam.sharepoint.com: where its sites live, and the
    # audience of its SharePoint tokens.
    sharepoint_url: str = Field(alias="sharePointUrl", min_length=1, max_length=256)

    @field_validator("sharepoint_url")
    @classmethod
    def _a_root_url(cls, value: str) -> str:
        parts = urlsplit(value.rstrip("/"))
        # Tokens go to this host: https, or plain http to this machine (the local emulator).
        if not parts.hostname or not (
            parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
        ):
            raise ValueError(
                "must be the https URL of the tenant's SharePoint, like https://x.sharepoint.com"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must be a plain URL, with no query, fragment or credentials")
        return value.rstrip("/")


class ConsentAnswer(WireModel):
    """What the identity platform's admin-consent endpoint sends back to the redirect URI:
    `admin_consent=True&tenant=…&state=…&scope=…`, or `error=…&error_description=…&state=…`.
    Anything else is refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    state: str = Field(min_length=1, max_length=2048)
    admin_consent: Literal["True", "true"] | None = None
    tenant: TenantId | None = None
    scope: str | None = Field(default=None, max_length=4096)
    error: str | None = Field(default=None, max_length=256)
    # Sent with a declined consent ("cancel").
    error_subcode: str | None = Field(default=None, max_length=256)
    error_description: str | None = Field(default=None, max_length=2048)
    error_uri: str | None = Field(default=None, max_length=2048)


class TenantView(WireModel):
    id: str
    display_name: str = Field(alias="displayName")
    sharepoint_url: str = Field(alias="sharePointUrl")
    state: str
    home: bool = False
    scopes: list[str] | None = None
    created_date_time: str | None = Field(default=None, alias="createdDateTime")
    consented_date_time: str | None = Field(default=None, alias="consentedDateTime")
    revoked_date_time: str | None = Field(default=None, alias="revokedDateTime")
    removed_date_time: str | None = Field(default=None, alias="removedDateTime")
    error: str | None = None
    consent_url: str | None = Field(default=None, alias="consentUrl")


class TenantRemoval(WireModel):
    """What `DELETE /api/tenants/{id}` removed."""

    tenant_id: str = Field(alias="tenantId")
    subscriptions: int
    deleted_at_source: int = Field(alias="deletedAtSource")
    # Subscriptions the source could not be asked to delete (consent gone): they lapse there.
    not_deleted_at_source: list[str] = Field(alias="notDeletedAtSource")
    sinks: int
    change_rows: int = Field(alias="changeRows")
    field_values: int = Field(alias="fieldValues")
