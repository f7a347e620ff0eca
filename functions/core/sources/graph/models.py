"""Graph's wire shapes: change and lifecycle notifications, and our create request."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from ...models import MAX_IGNORED, IgnoredName, UtcDatetime, WireModel, guid


class GraphNotification(WireModel):
    """One entry of a Graph change or lifecycle notification (`value[]`)."""

    subscription_id: str = Field(alias="subscriptionId")
    client_state: str | None = Field(default=None, alias="clientState", max_length=128)
    change_type: Literal["created", "updated", "deleted"] | None = Field(default=None, alias="changeType")
    lifecycle_event: Literal["reauthorizationRequired", "subscriptionRemoved", "missed"] | None = Field(
        default=None, alias="lifecycleEvent"
    )
    resource: str | None = Field(default=None, max_length=1024)
    tenant_id: str | None = Field(default=None, alias="tenantId", max_length=64)
    subscription_expiration_date_time: UtcDatetime | None = Field(
        default=None, alias="subscriptionExpirationDateTime"
    )

    _id = field_validator("subscription_id")(guid)


class CreateGraphSubscriptionRequest(WireModel):
    """A Graph resource: `{"source": "graph", "resource", "changeType"}`."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    source: Literal["graph"]
    resource: str = Field(min_length=1, max_length=512)
    change_type: str = Field(alias="changeType", min_length=1, max_length=64)
    # Changes by these (application ids, user principal names) go to none of its sinks.
    ignore_changes_by: tuple[IgnoredName, ...] = Field(
        default=(), alias="ignoreChangesBy", max_length=MAX_IGNORED
    )
