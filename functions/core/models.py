"""Wire shapes: one pydantic model per shape, with Microsoft's exact field names as aliases."""

from __future__ import annotations

import json
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


# Who made the changes a subscription or a sink does not send on (application ids, user principal
# names): up to 20.
MAX_IGNORED = 20
IgnoredName = Annotated[str, Field(min_length=1, max_length=256)]


def _tenant_guid(value: str) -> str:
    try:
        return str(UUID(value))
    except ValueError:
        raise ValueError("must be a directory (tenant) id, a GUID") from None


# A directory (tenant) id, as a create request or a filter names it: written as a lower-case GUID.
TenantId = Annotated[str, Field(max_length=64), AfterValidator(_tenant_guid)]


# A source's name (the registry's key): short, lower-case letters.
SOURCE_NAME = r"^[a-z][a-z0-9]{0,31}$"


class WireModel(BaseModel):
    """Accepts Microsoft's field names (aliases) and ignores fields we do not use."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


# --- SharePoint -> us: notifications ------------------------------------------------------------


class NotificationEnvelope(WireModel):
    """The outer shape of every webhook POST: `{"value": [...]}`. Entries are checked one by one."""

    value: list[Any] = Field(min_length=1)
    # Rich notifications (Teams): JWTs saying Microsoft Graph sent them, one per app and tenant.
    validation_tokens: list[Any] | None = Field(default=None, alias="validationTokens")


def guid(value: str) -> str:
    """Subscription ids are GUIDs: anything else is refused before any storage lookup."""
    return str(UUID(value))


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
    # A rich notification's change, still encrypted: the worker decrypts it, after its signature.
    encrypted_content: dict[str, Any] | None = Field(default=None, alias="encryptedContent")


class NotificationMessage(WireModel):
    # Ours, not the queue's: it stays the same when the worker puts the message back for later,
    # and names the message in the failure log and the poison API.
    id: str = Field(default_factory=lambda: uuid4().hex, min_length=1, max_length=64)
    source: str = Field(pattern=SOURCE_NAME)
    received_at: UtcDatetime = Field(alias="receivedAt")
    # The W3C trace context of the intake invocation that queued it, so that the worker's log
    # lines for this message join the request in Application Insights.
    traceparent: str | None = Field(default=None, max_length=55)
    notifications: list[QueuedNotification] = Field(min_length=1)
    # A read the service asked for itself (after a recreate): no notification came, so it says
    # nothing of when the source last notified, and the changes it finds may be a gap.
    requested: bool | None = None


# --- management API -----------------------------------------------------------------------------


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    RECREATED = "recreated"
    # A DELETE has begun: nothing may recreate it, whatever the source answers meanwhile.
    DELETING = "deleting"


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


class AlertView(WireModel):
    """One condition of a subscription's health alerts, as `GET …/alerts` shows it."""

    condition: str
    raised: bool
    last_sent_date_time: str | None = Field(default=None, alias="lastSentDateTime")
    undelivered: bool


class NotificationGaps(WireModel):
    """Changes a read not started by a notification found unannounced past the source's delay."""

    count: int
    last_date_time: str | None = Field(default=None, alias="lastDateTime")
    longest_seconds: int = Field(alias="longestSeconds")


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
    # healthy, late (notifications come, but changes were found unannounced) or silent.
    state: Literal["healthy", "late", "silent"] | None = None
    notification_gaps: NotificationGaps | None = Field(default=None, alias="notificationGaps")


class HealthSummaryView(WireModel):
    """What every row of a subscription list says of its health, from the record alone."""

    state: Literal["healthy", "late", "silent"]
    last_gap_date_time: str | None = Field(default=None, alias="lastGapDateTime")
    reads_failing_since_date_time: str | None = Field(default=None, alias="readsFailingSinceDateTime")


class UpdateSubscriptionRequest(WireModel):
    """`PATCH /api/subscriptions/{id}`: what may change without subscribing again."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    ignore_changes_by: tuple[IgnoredName, ...] = Field(alias="ignoreChangesBy", max_length=MAX_IGNORED)


class SubscriptionView(WireModel):
    id: str
    source: str
    tenant_id: str | None = Field(default=None, alias="tenantId")
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
    # SharePoint: the fields each change row carries before and after.
    fields: list[str] | None = None
    # What people call it (a SharePoint list's title), when the source said.
    title: str | None = None
    # Changes by these stay in the change log and go to none of the subscription's sinks.
    ignore_changes_by: list[str] | None = Field(default=None, alias="ignoreChangesBy")
    health_summary: HealthSummaryView | None = Field(default=None, alias="healthSummary")
    health: SubscriptionHealth | None = None


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


class ChangeView(WireModel):
    id: str
    subscription_id: str = Field(alias="subscriptionId")
    source: str
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
    # The fields a SharePoint subscription follows: their values when the change was read (for a
    # delete, the last read), and those that changed since the item's last change read.
    fields: dict[str, Any] | None = None
    # {"Status": {"before": "Draft", "after": "Approved"}}; a before of null is an empty field.
    changed_fields: dict[str, dict[str, Any]] | None = Field(default=None, alias="changedFields")
    # The first change read of an item that existed before: its earlier values are not known.
    fields_before_unknown: bool | None = Field(default=None, alias="fieldsBeforeUnknown")
    # Who made the change, where the source says: a user's email or name, else an application's.
    changed_by: str | None = Field(default=None, alias="changedBy")
    changed_by_kind: Literal["user", "application"] | None = Field(default=None, alias="changedByKind")
    # Where the change log named no one: "version", who made the version this change made;
    # "item", who last wrote the item when it was read.
    changed_by_source: Literal["item", "version"] | None = Field(default=None, alias="changedBySource")
    # Where `fields` and `changedFields` come from when values read could not tell each change's
    # own: "versions" (the item's versions, each change its own before and after), or "reads"
    # (the list keeps no versions: several changes in one read show as one difference).
    fields_from: Literal["versions", "reads"] | None = Field(default=None, alias="fieldsFrom")

    @field_validator("fields", "changed_fields", mode="before")
    @classmethod
    def _stored_as_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as Microsoft-style JSON (aliases, no unset optionals left as noise)."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)
