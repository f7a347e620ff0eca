"""Wire shapes: one pydantic model per shape, with Microsoft's exact field names as aliases."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


def _as_utc(value: datetime) -> datetime:
    """SharePoint sends UTC with 'Z' (and 7 fractional digits); treat a naive time as UTC too."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]


def format_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a 'Z', as SharePoint and Graph write it."""
    return _as_utc(value).isoformat(timespec="seconds").replace("+00:00", "Z")


class WireModel(BaseModel):
    """Accepts Microsoft's field names (aliases) and ignores fields we do not use."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


# --- SharePoint -> us: notifications ------------------------------------------------------------


class NotificationEnvelope(WireModel):
    """The outer shape of every webhook POST: `{"value": [...]}`. Entries are checked one by one."""

    value: list[Any] = Field(min_length=1)


def _guid(value: str) -> str:
    """Subscription ids are GUIDs: anything else is refused before any storage lookup."""
    return str(UUID(value))


class SharePointNotification(WireModel):
    subscription_id: str = Field(alias="subscriptionId")
    client_state: str | None = Field(default=None, alias="clientState", max_length=255)
    expiration_date_time: UtcDatetime = Field(alias="expirationDateTime")
    resource: str = Field(min_length=1, max_length=256)
    tenant_id: str | None = Field(default=None, alias="tenantId", max_length=64)
    site_url: str = Field(alias="siteUrl", min_length=1, max_length=1024)
    web_id: str | None = Field(default=None, alias="webId", max_length=64)

    _id = field_validator("subscription_id")(_guid)


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

    _id = field_validator("subscription_id")(_guid)


# --- intake -> worker: the queue message --------------------------------------------------------


class QueuedNotification(WireModel):
    """What the worker needs from one accepted notification; never the clientState."""

    subscription_id: str = Field(alias="subscriptionId")
    resource: str | None = None
    site_url: str | None = Field(default=None, alias="siteUrl")
    tenant_id: str | None = Field(default=None, alias="tenantId")
    web_id: str | None = Field(default=None, alias="webId")
    change_type: str | None = Field(default=None, alias="changeType")
    lifecycle_event: str | None = Field(default=None, alias="lifecycleEvent")


class NotificationMessage(WireModel):
    # Ours, not the queue's: it stays the same when the worker puts the message back for later,
    # and names the message in the failure log and the poison API.
    id: str = Field(default_factory=lambda: uuid4().hex, min_length=1, max_length=64)
    source: Literal["sharepoint", "graph"] = "sharepoint"
    received_at: UtcDatetime = Field(alias="receivedAt")
    # The W3C trace context of the intake invocation that queued it, so that the worker's log
    # lines for this message join the request in Application Insights.
    traceparent: str | None = Field(default=None, max_length=55)
    notifications: list[QueuedNotification] = Field(min_length=1)


# --- us -> SharePoint REST ----------------------------------------------------------------------


class SharePointSubscriptionRequest(WireModel):
    resource: str
    notification_url: str = Field(alias="notificationUrl")
    expiration_date_time: str = Field(alias="expirationDateTime")
    client_state: str = Field(alias="clientState")


class SharePointSubscription(WireModel):
    id: str
    expiration_date_time: UtcDatetime = Field(alias="expirationDateTime")
    notification_url: str = Field(alias="notificationUrl")
    resource: str
    client_state: str | None = Field(default=None, alias="clientState")


class ChangeTokenValue(WireModel):
    string_value: str = Field(alias="StringValue")


class SharePointChange(WireModel):
    change_token: ChangeTokenValue = Field(alias="ChangeToken")
    change_type: int = Field(alias="ChangeType")
    item_id: int | None = Field(default=None, alias="ItemId")
    site_id: str | None = Field(default=None, alias="SiteId")
    web_id: str | None = Field(default=None, alias="WebId")
    time: UtcDatetime = Field(alias="Time")
    # Newer tenants; for files in document libraries.
    unique_id: str | None = Field(default=None, alias="UniqueId")
    server_relative_url: str | None = Field(default=None, alias="ServerRelativeUrl")


class SharePointChangePage(WireModel):
    value: list[SharePointChange]


class SharePointListInfo(WireModel):
    """A list as `GET _api/web/lists?$select=Id,Title,BaseTemplate` returns it."""

    id: str = Field(alias="Id")
    title: str = Field(alias="Title")
    base_template: int = Field(alias="BaseTemplate")


class SharePointListItem(WireModel):
    """An item as `GET items?$select=Id,Modified,GUID,FileLeafRef,FileRef` returns it."""

    id: int = Field(alias="Id")
    modified: UtcDatetime = Field(alias="Modified")
    unique_id: str | None = Field(default=None, alias="GUID")
    file_name: str | None = Field(default=None, alias="FileLeafRef")
    server_relative_url: str | None = Field(default=None, alias="FileRef")


class SharePointItemPage(WireModel):
    value: list[SharePointListItem]
    next_link: str | None = Field(default=None, alias="odata.nextLink")


class CurrentChangeToken(WireModel):
    current_change_token: ChangeTokenValue = Field(alias="CurrentChangeToken")


# --- management API -----------------------------------------------------------------------------


class CreateSubscriptionRequest(WireModel):
    """A SharePoint list: `{"siteUrl", "listId"}` (`"source": "sharepoint"` may be given)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    source: Literal["sharepoint"] = "sharepoint"
    site_url: str = Field(alias="siteUrl", min_length=1, max_length=1024)
    list_id: UUID = Field(alias="listId")
    expiration_date_time: UtcDatetime | None = Field(default=None, alias="expirationDateTime")

    @field_validator("site_url")
    @classmethod
    def _site_url_is_a_path_or_url(cls, value: str) -> str:
        if not (value.startswith("/") or value.startswith("https://") or value.startswith("http://")):
            raise ValueError("must be a server-relative path like /sites/x or an absolute URL")
        return value


class CreateGraphSubscriptionRequest(WireModel):
    """A Graph resource: `{"source": "graph", "resource", "changeType"}`."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    source: Literal["graph"]
    resource: str = Field(min_length=1, max_length=512)
    change_type: str = Field(alias="changeType", min_length=1, max_length=64)


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    RECREATED = "recreated"


class FailureView(WireModel):
    reason: str
    date_time: str = Field(alias="dateTime")


class SinkDeliveryState(WireModel):
    """One connector, as the subscription's health shows it."""

    id: str
    type: str
    state: str
    last_delivery: dict[str, str] | None = Field(default=None, alias="lastDelivery")
    disabled_reason: str | None = Field(default=None, alias="disabledReason")
    failing_since: str | None = Field(default=None, alias="failingSince")


class SubscriptionHealth(WireModel):
    """What `GET /api/subscriptions/{id}` says of how the subscription is doing."""

    sinks: int
    sink_states: list[SinkDeliveryState] = Field(default_factory=list, alias="sinkStates")
    last_notification_date_time: str | None = Field(default=None, alias="lastNotificationDateTime")
    last_synced_date_time: str | None = Field(default=None, alias="lastSyncedDateTime")
    # SharePoint only: when the stored change token was issued. SharePoint keeps about 60 days of
    # changes; the sweep keeps this within a day of now.
    change_token_date_time: str | None = Field(default=None, alias="changeTokenDateTime")
    consecutive_failures: int | None = Field(default=None, alias="consecutiveFailures")
    last_failure: FailureView | None = Field(default=None, alias="lastFailure")


class SubscriptionView(WireModel):
    id: str
    source: Literal["sharepoint", "graph"] = "sharepoint"
    site_url: str | None = Field(default=None, alias="siteUrl")
    list_id: str | None = Field(default=None, alias="listId")
    resource: str
    change_type: str | None = Field(default=None, alias="changeType")
    notification_url: str = Field(alias="notificationUrl")
    expiration_date_time: str = Field(alias="expirationDateTime")
    status: SubscriptionStatus
    created_date_time: str = Field(alias="createdDateTime")
    last_renewed_date_time: str | None = Field(default=None, alias="lastRenewedDateTime")
    previous_id: str | None = Field(default=None, alias="previousId")
    next_renewal_date_time: str | None = Field(default=None, alias="nextRenewalDateTime")
    health: SubscriptionHealth | None = None


class SiteListView(WireModel):
    """A list or library of a site, as `GET /api/sites/lists` offers it to pick from."""

    id: str
    title: str
    base_template: int = Field(alias="baseTemplate")
    kind: Literal["list", "library"]


class ChangeKind(StrEnum):
    """One vocabulary for every source; the source's own value is kept beside it."""

    ADD = "add"
    UPDATE = "update"
    DELETE = "delete"
    RESTORE = "restore"
    RENAME = "rename"
    MOVE = "move"
    OTHER = "other"
    # Not a change: a marker that the changes in a window could not be read and were rebuilt.
    RESYNC = "resync"

    @classmethod
    def from_sharepoint(cls, change_type: int) -> ChangeKind:
        """SP.ChangeType: 1 Add, 2 Update, 3 DeleteObject, 4 Rename, 5 MoveAway, 6 MoveInto,
        7 Restore, 15 SystemUpdate (an update that makes no new version); the rest is other."""
        return _SHAREPOINT_CHANGE_KINDS.get(change_type, cls.OTHER)


_SHAREPOINT_CHANGE_KINDS = {
    1: ChangeKind.ADD,
    2: ChangeKind.UPDATE,
    3: ChangeKind.DELETE,
    4: ChangeKind.RENAME,
    5: ChangeKind.MOVE,
    6: ChangeKind.MOVE,
    7: ChangeKind.RESTORE,
    15: ChangeKind.UPDATE,
}


class ChangeView(WireModel):
    id: str
    subscription_id: str = Field(alias="subscriptionId")
    source: Literal["sharepoint", "graph"] = "sharepoint"
    site_url: str | None = Field(default=None, alias="siteUrl")
    list_id: str | None = Field(default=None, alias="listId")
    resource: str | None = None
    item_id: int | str | None = Field(default=None, alias="itemId")
    change_type: ChangeKind = Field(alias="changeType")
    # SharePoint's SP.ChangeType number, or Graph's created/updated/deleted.
    source_change_type: int | str | None = Field(default=None, alias="sourceChangeType")
    change_token: str | None = Field(default=None, alias="changeToken")
    time: str
    unique_id: str | None = Field(default=None, alias="uniqueId")
    file_name: str | None = Field(default=None, alias="fileName")
    server_relative_url: str | None = Field(default=None, alias="serverRelativeUrl")
    subject: str | None = None
    # Set on a resync entry and on the item rows it rebuilt.
    resync: bool | None = None
    resync_from: str | None = Field(default=None, alias="resyncFrom")
    resync_to: str | None = Field(default=None, alias="resyncTo")
    reason: str | None = None


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as Microsoft-style JSON (aliases, no unset optionals left as noise)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
