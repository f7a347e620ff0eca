"""Graph's wire shapes: change and lifecycle notifications, and our create request."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from ...models import MAX_IGNORED, IgnoredName, TenantId, WireModel
from ..graph_api import GraphChangeEntry


class GraphNotification(GraphChangeEntry):
    """One entry of a OneDrive or Outlook change or lifecycle notification."""


class CreateGraphSubscriptionRequest(WireModel):
    """A Graph resource: `{"source": "graph", "resource", "changeType"}`."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    source: Literal["graph"]
    resource: str = Field(min_length=1, max_length=512)
    change_type: str = Field(alias="changeType", min_length=1, max_length=64)
    # Changes by these (application ids, user principal names) go to none of its sinks.
    # The tenant to subscribe in (a consented guest); the home tenant when left out.
    tenant_id: TenantId | None = Field(default=None, alias="tenantId")
    ignore_changes_by: tuple[IgnoredName, ...] = Field(
        default=(), alias="ignoreChangesBy", max_length=MAX_IGNORED
    )
