"""SharePoint's wire shapes: its notifications, its REST answers, and our create request."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal
from uuid import UUID

from pydantic import ConfigDict, Field, field_validator

from ...models import MAX_IGNORED, ChangeKind, IgnoredName, TenantId, UtcDatetime, WireModel, guid

# Fields a subscription may follow, and what an internal name looks like (`Status`, `Due_x0020_Date`).
MAX_FIELDS = 20
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

# SP.ChangeType: 1 Add, 2 Update, 3 DeleteObject, 4 Rename, 5 MoveAway, 6 MoveInto, 7 Restore,
# 15 SystemUpdate (an update that makes no new version); the rest is other.
CHANGE_KINDS = {
    1: ChangeKind.ADD,
    2: ChangeKind.UPDATE,
    3: ChangeKind.DELETE,
    4: ChangeKind.RENAME,
    5: ChangeKind.MOVE,
    6: ChangeKind.MOVE,
    7: ChangeKind.RESTORE,
    15: ChangeKind.UPDATE,
}


class SharePointNotification(WireModel):
    subscription_id: str = Field(alias="subscriptionId")
    client_state: str | None = Field(default=None, alias="clientState", max_length=255)
    expiration_date_time: UtcDatetime = Field(alias="expirationDateTime")
    resource: str = Field(min_length=1, max_length=256)
    tenant_id: str | None = Field(default=None, alias="tenantId", max_length=64)
    site_url: str = Field(alias="siteUrl", min_length=1, max_length=1024)
    web_id: str | None = Field(default=None, alias="webId", max_length=64)

    _id = field_validator("subscription_id")(guid)


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
    # Who made it, when SharePoint says (it often does not: sp-dev-docs issue 10017).
    editor: str | None = Field(default=None, alias="Editor")
    editor_email_hint: str | None = Field(default=None, alias="EditorEmailHint")


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


class SharePointUser(WireModel):
    """A person field expanded (`$expand=Editor`): the user's claim and email (empty for an app)."""

    name: str | None = Field(default=None, alias="Name")
    email: str | None = Field(default=None, alias="EMail")


class SharePointFieldValues(WireModel):
    """Items as `GetItems` answers a CAML query for some fields: `Id`, the fields asked for, and
    the expanded `Editor` (who last wrote the item)."""

    model_config = ConfigDict(extra="allow")

    id: int = Field(alias="Id")
    editor: SharePointUser | None = Field(default=None, alias="Editor")

    @property
    def values(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SharePointFieldValuesPage(WireModel):
    value: list[SharePointFieldValues]


class CurrentChangeToken(WireModel):
    current_change_token: ChangeTokenValue = Field(alias="CurrentChangeToken")


class CreateSubscriptionRequest(WireModel):
    """A SharePoint list: `{"siteUrl", "listId"}` (`"source": "sharepoint"` may be given)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    source: Literal["sharepoint"] = "sharepoint"
    site_url: str = Field(alias="siteUrl", min_length=1, max_length=1024)
    list_id: UUID = Field(alias="listId")
    expiration_date_time: UtcDatetime | None = Field(default=None, alias="expirationDateTime")
    # Internal names of the fields whose values each change row carries, before and after.
    fields: tuple[str, ...] = Field(default=(), max_length=MAX_FIELDS)
    # Changes by these (application ids, user principal names) go to none of its sinks.
    # The tenant to subscribe in (a consented guest); the home tenant when left out.
    tenant_id: TenantId | None = Field(default=None, alias="tenantId")
    ignore_changes_by: tuple[IgnoredName, ...] = Field(
        default=(), alias="ignoreChangesBy", max_length=MAX_IGNORED
    )

    @field_validator("fields")
    @classmethod
    def _fields_are_internal_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not FIELD_NAME.fullmatch(name):
                raise ValueError(f"'{name[:40]}' is not a field's internal name (letters, digits, _)")
        if len({name.lower() for name in value}) != len(value):
            raise ValueError("names a field twice")
        return value

    @field_validator("site_url")
    @classmethod
    def _site_url_is_a_path_or_url(cls, value: str) -> str:
        if not (value.startswith("/") or value.startswith("https://") or value.startswith("http://")):
            raise ValueError("must be a server-relative path like /sites/x or an absolute URL")
        return value


class SiteListView(WireModel):
    """A list or library of a site, as `GET /api/sites/lists` offers it to pick from."""

    id: str
    title: str
    base_template: int = Field(alias="baseTemplate")
    kind: Literal["list", "library"]


class SharePointItemVersion(WireModel):
    """One entry of `items({id})/versions`: when it was made, its label, who made it, and the
    item's fields as they were (kept as extra properties)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    created: UtcDatetime = Field(alias="Created")
    label: str = Field(alias="VersionLabel")
    editor: dict[str, Any] | None = Field(default=None, alias="Editor")

    def values(self, fields: Sequence[str]) -> dict[str, Any]:
        """The followed fields then (a person field as its user's id, `{name}Id`, as the field read
        keeps it)."""
        extra = self.model_extra or {}
        return {name: extra.get(name, extra.get(f"{name}Id")) for name in fields}

    @property
    def number(self) -> float:
        try:
            return float(self.label)
        except ValueError:
            return 0.0


class SharePointVersionPage(WireModel):
    value: list[SharePointItemVersion]
