"""Teams' wire shapes: rich change notifications and lifecycle events, and our create request."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ...models import MAX_IGNORED, IgnoredName, TenantId, WireModel
from ..graph_api import GraphChangeEntry

# One chat message's ciphertext, base64: Teams caps a message at about 28 KB of text, and a
# queue message at 64 KiB; anything near a megabyte is not Graph's.
MAX_DATA_CHARS = 256 * 1024


class EncryptedContent(WireModel):
    """`encryptedContent` of one item: ciphertext, its signature and the wrapped key."""

    data: str = Field(min_length=1, max_length=MAX_DATA_CHARS)
    data_signature: str = Field(alias="dataSignature", min_length=1, max_length=512)
    data_key: str = Field(alias="dataKey", min_length=1, max_length=2048)
    encryption_certificate_id: str = Field(alias="encryptionCertificateId", min_length=1, max_length=128)
    encryption_certificate_thumbprint: str | None = Field(
        default=None, alias="encryptionCertificateThumbprint", max_length=128
    )


class TeamsNotification(GraphChangeEntry):
    """One entry of a Teams change or lifecycle notification: a change carries its message."""

    encrypted_content: EncryptedContent | None = Field(default=None, alias="encryptedContent")


class CreateTeamsSubscriptionRequest(WireModel):
    """A channel's or chat's messages, or every channel's or chat's in the tenant:
    `{"source": "teams", "resource", "changeType"}`."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    source: Literal["teams"]
    resource: str = Field(min_length=1, max_length=512)
    change_type: str = Field(
        default="created,updated,deleted", alias="changeType", min_length=1, max_length=64
    )
    # Messages by these (authors' Entra object ids, bots' application ids) go to none of its sinks.
    # The tenant to subscribe in (a consented guest); the home tenant when left out.
    tenant_id: TenantId | None = Field(default=None, alias="tenantId")
    ignore_changes_by: tuple[IgnoredName, ...] = Field(
        default=(), alias="ignoreChangesBy", max_length=MAX_IGNORED
    )
