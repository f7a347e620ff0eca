"""SharePoint Online lists and libraries: list webhooks, GetChanges with change tokens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from ...auth import token_provider_for
from ...change_log import ChangeLog
from ...checkpoints import CheckpointStore
from ...models import QueuedNotification
from ...settings import Settings
from ...storage import Storage
from ...tenancy import acting_tenant, inner_scope
from ..base import EXPIRY_SAFETY_MARGIN, Draft, EntryKind, InvalidSubscriptionRequest
from .change_tokens import InvalidChangeToken, parse_change_token
from .client import ListRef, SharePointClient
from .field_changes import FieldTracker
from .field_values import FieldValueStore
from .models import CreateSubscriptionRequest, SharePointNotification, SiteListView
from .reader import SHAREPOINT, ListReader
from .subscriber import MAX_LIFETIME, ListSubscriber

if TYPE_CHECKING:
    from ...subscriptions.record import SubscriptionRecord

__all__ = ["SHAREPOINT", "ListRef", "SharePoint", "SharePointClient"]

NOTIFICATION_DELAY = timedelta(minutes=15)
# Plain http is allowed only to these: the local emulator.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _queued(notification: SharePointNotification) -> QueuedNotification:
    return QueuedNotification(
        subscription_id=notification.subscription_id,
        resource=notification.resource,
        site_url=notification.site_url,
        tenant_id=notification.tenant_id,
        web_id=notification.web_id,
    )


NOTIFICATION_ENTRIES = EntryKind(SHAREPOINT, SharePointNotification, lambda _: "", _queued)


@dataclass(frozen=True)
class SharePoint:
    """The SharePoint source: one subscription per list of the tenant's sites."""

    client: SharePointClient
    subscriber: ListSubscriber
    reader: ListReader
    tenant_url: str
    sweep_max_age: timedelta
    name: str = SHAREPOINT
    # Every notification is a hint: the change is read.
    carried: None = None
    request_model: type[BaseModel] = CreateSubscriptionRequest
    writes_behind: bool = False
    entry_kinds: Mapping[str, EntryKind] = field(default_factory=lambda: {SHAREPOINT: NOTIFICATION_ENTRIES})

    @classmethod
    def build(
        cls,
        settings: Settings,
        storage: Storage,
        checkpoints: CheckpointStore,
        change_log: ChangeLog,
        client: SharePointClient | None = None,
    ) -> SharePoint:
        client = client or SharePointClient(token_provider_for(settings))
        fields = FieldTracker(client, FieldValueStore(storage))
        return cls(
            client=client,
            subscriber=ListSubscriber(client, settings.sharepoint_notification_url),
            reader=ListReader(checkpoints, change_log, client, fields),
            tenant_url=settings.sharepoint_tenant_url,
            sweep_max_age=timedelta(hours=settings.sweep_max_age_hours),
        )

    def draft(self, request: Any, now: datetime) -> Draft:
        if not isinstance(request, CreateSubscriptionRequest):
            raise InvalidSubscriptionRequest("the request is not a SharePoint subscription request")
        site_url = self.absolute_site_url(request.site_url)
        list_id = str(request.list_id).lower()
        return Draft(
            scope=list_id,
            address=site_url,
            resource=ListRef(site_url, list_id).api_url,
            expiration=_checked_expiration(request.expiration_date_time, now),
            fields=request.fields,
        )

    def expected_delay(self, address: str) -> timedelta:
        """How late a notification may come before its absence is a gap: SharePoint sends within
        about a minute and retries every 5; past this, something is wrong."""
        return NOTIFICATION_DELAY

    def view_fields(self, record: SubscriptionRecord) -> dict[str, Any]:
        view: dict[str, Any] = {"siteUrl": record.address, "listId": inner_scope(record.scope)}
        if record.fields:
            view["fields"] = list(record.fields)
        return view

    def warm(self) -> None:
        """Its notifications are checked against storage alone: nothing to make ready."""

    def cursor_issued(self, cursor: str) -> datetime | None:
        try:
            return parse_change_token(cursor).time
        except InvalidChangeToken:
            return None

    def site_lists(self, site_url: str) -> list[SiteListView]:
        """What a person picks a subscription from: the site's lists and libraries."""
        return self.client.lists(self.absolute_site_url(site_url))

    def absolute_site_url(self, site_url: str) -> str:
        """An absolute site URL of this tenant, from a path like /sites/x or a full URL; anything
        else is refused."""
        acting = acting_tenant()
        root = acting.sharepoint_url if acting is not None and not acting.home else self.tenant_url
        if site_url.startswith("/"):
            absolute = f"{root}{site_url}"
        else:
            absolute = site_url
            scheme, netloc, path = urlsplit(root)[:3]
            given = urlsplit(absolute)
            if (given.scheme, given.netloc.lower()) != (scheme, netloc.lower()) or not (
                given.path == path or given.path.startswith(f"{path}/")
            ):
                raise InvalidSubscriptionRequest(f"siteUrl must be a site of {root}")
        parts = urlsplit(absolute)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
            # The bearer token goes wherever the site is: never over plain http but to this machine.
            raise InvalidSubscriptionRequest("siteUrl must be an https URL")
        segments = parts.path.split("/")
        if (
            parts.query
            or parts.fragment
            or any(c in parts.path for c in "'\"\\ %")
            or any(segment in (".", "..") for segment in segments)
            or "" in segments[1:-1]
        ):
            raise InvalidSubscriptionRequest("siteUrl must be a plain site path like /sites/x")
        return absolute.rstrip("/")


def _checked_expiration(requested: datetime | None, now: datetime) -> datetime:
    latest = now + MAX_LIFETIME - EXPIRY_SAFETY_MARGIN
    if requested is None:
        return latest
    if requested <= now:
        raise InvalidSubscriptionRequest("expirationDateTime must be in the future")
    if requested > now + MAX_LIFETIME:
        raise InvalidSubscriptionRequest(
            "expirationDateTime must be at most 180 days from now (SharePoint's limit)"
        )
    return min(requested, latest)
