"""Microsoft Graph change notifications over REST: subscribe, renew, reauthorize, delete, and read
changes with delta queries (OneDrive folders, Outlook mail folders and calendars)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ...auth import TokenProvider
from ...models import UtcDatetime, WireModel, format_utc
from ...outbound import DEFAULT_POLICY, RetryPolicy, ServiceThrottle, UpstreamError, new_session, send
from ..base import InvalidSubscriptionRequest, SubscriptionGone

if TYPE_CHECKING:
    import requests

SERVICE = "graph"
ResourceKind = Literal["driveItem", "message", "event"]

# Maximum subscription lifetime per resource, in minutes (Graph's subscription resource doc; it
# has changed before, so this is the one place to change it).
MAX_LIFETIME_MINUTES: dict[str, int] = {"driveItem": 42_300, "message": 10_080, "event": 10_080}
# Change types each resource accepts.
CHANGE_TYPES: dict[str, frozenset[str]] = {
    "driveItem": frozenset({"updated"}),
    "message": frozenset({"created", "updated", "deleted"}),
    "event": frozenset({"created", "updated", "deleted"}),
}
# The properties a delta round asks for: what a change row needs to say what it was and who made
# it (the times tell an add from an update; file and folder mark a document).
DELTA_SELECT = {
    "driveItem": "id,name,size,file,folder,parentReference,lastModifiedBy,createdDateTime,"
    "lastModifiedDateTime",
    "message": "id,subject,from,receivedDateTime,isRead,createdDateTime,lastModifiedDateTime",
}
# Events are read through calendarView/delta, which needs a window: this far back and ahead.
CALENDAR_WINDOW_BACK = timedelta(days=30)
CALENDAR_WINDOW_AHEAD = timedelta(days=365)
DELTA_PAGE_SIZE = 200

# A resource is parsed into its parts and rebuilt from them, so that nothing but an id reaches a
# Graph URL: a user is a GUID or a user principal name (no '?', '#', '/', '%' or '..').
_USER = (
    r"(?P<user>[A-Za-z0-9](?:[A-Za-z0-9._+\-]*[A-Za-z0-9])?(?:@[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?)?)"
)
_DRIVE_ROOT = re.compile(r"/drives/(?P<drive>[A-Za-z0-9!_\-]+)/root")
_FOLDER_MESSAGES = re.compile(rf"/users/{_USER}/mailFolders\('(?P<folder>[A-Za-z0-9_\-=]+)'\)/messages")
_EVENTS = re.compile(rf"/users/{_USER}/events")
# Codes of an expired delta link: with 410 (and a Location to start over from), or, for Outlook,
# with another 4xx and no Location (delta-query-overview).
RESYNC_CODES = frozenset(
    {
        "resyncRequired",
        "syncStateNotFound",
        "syncStateInvalid",
        "resyncChangesApplyDifferences",
        "resyncChangesUploadDifferences",
    }
)


class InvalidGraphResource(InvalidSubscriptionRequest):
    pass


@dataclass(frozen=True)
class GraphResource:
    """A resource this service can follow: what it is, and where its delta query starts."""

    path: str
    kind: ResourceKind

    @classmethod
    def parse(cls, path: str) -> GraphResource:
        if (drive := _DRIVE_ROOT.fullmatch(path)) is not None:
            return cls(f"/drives/{drive['drive']}/root", "driveItem")
        if (folder := _FOLDER_MESSAGES.fullmatch(path)) is not None and ".." not in folder["user"]:
            return cls(f"/users/{folder['user']}/mailFolders('{folder['folder']}')/messages", "message")
        if (calendar := _EVENTS.fullmatch(path)) is not None and ".." not in calendar["user"]:
            return cls(f"/users/{calendar['user']}/events", "event")
        raise InvalidGraphResource(
            "resource must be a OneDrive folder (/drives/{drive-id}/root), a mail folder's messages "
            "(/users/{id}/mailFolders('{folder}')/messages) or a calendar (/users/{id}/events)"
        )

    @property
    def max_lifetime(self) -> timedelta:
        return timedelta(minutes=MAX_LIFETIME_MINUTES[self.kind])

    def check_change_type(self, change_type: str) -> str:
        """`created,updated,deleted` in any subset the resource accepts; normalised."""
        wanted = [t.strip() for t in change_type.split(",") if t.strip()]
        allowed = CHANGE_TYPES[self.kind]
        if not wanted or len(set(wanted)) != len(wanted) or not set(wanted) <= allowed:
            subset = ", ".join(sorted(allowed))
            raise InvalidGraphResource(
                f"changeType for this resource must be a comma-separated subset of {subset}"
            )
        return ",".join(t for t in ("created", "updated", "deleted") if t in wanted)

    def first_delta_url(self, base_url: str, now: datetime) -> str:
        """Where a delta round starts when there is no link yet."""
        if self.kind != "event":  # /drives/{id}/root/delta, .../mailFolders('{f}')/messages/delta
            # What each row carries, from the delta pages themselves; every later round keeps it.
            return f"{base_url}/v1.0{self.path}/delta?$select={DELTA_SELECT[self.kind]}"
        user = self.path.split("/")[2]  # /users/{id}/events, as _EVENTS matched it
        start, end = format_utc(now - CALENDAR_WINDOW_BACK), format_utc(now + CALENDAR_WINDOW_AHEAD)
        window = f"startDateTime={start}&endDateTime={end}"
        return f"{base_url}/v1.0/users/{user}/calendarView/delta?{window}"


class GraphSubscriptionRequest(WireModel):
    change_type: str = Field(alias="changeType")
    notification_url: str = Field(alias="notificationUrl")
    lifecycle_notification_url: str = Field(alias="lifecycleNotificationUrl")
    resource: str
    expiration_date_time: str = Field(alias="expirationDateTime")
    client_state: str = Field(alias="clientState", max_length=128)
    latest_supported_tls_version: str = Field(default="v1_2", alias="latestSupportedTlsVersion")


class GraphSubscription(WireModel):
    id: str
    resource: str
    change_type: str = Field(alias="changeType")
    expiration_date_time: UtcDatetime = Field(alias="expirationDateTime")
    notification_url: str = Field(alias="notificationUrl")
    lifecycle_notification_url: str | None = Field(default=None, alias="lifecycleNotificationUrl")


class DeltaPage(WireModel):
    value: list[dict[str, Any]]
    next_link: str | None = Field(default=None, alias="@odata.nextLink")
    delta_link: str | None = Field(default=None, alias="@odata.deltaLink")


def is_client_error(status: int | None) -> bool:
    return status is not None and 400 <= status < 500


class DeltaLinkGone(Exception):
    """Graph answered 410: the link is no use any more; start over from `restart_url`."""

    def __init__(self, restart_url: str, reason: str) -> None:
        super().__init__(reason)
        self.restart_url = restart_url


class GraphClient:
    def __init__(
        self,
        tokens: TokenProvider,
        base_url: str,
        *,
        session: requests.Session | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self._tokens = tokens
        self.base_url = base_url.rstrip("/")
        self._session = session or new_session()
        self._policy = policy
        self.throttle = ServiceThrottle()

    def create_subscription(self, request: GraphSubscriptionRequest) -> GraphSubscription:
        # Not idempotent: a blind retry after a lost response could create a second subscription.
        response = self._send(
            "POST",
            f"{self.base_url}/v1.0/subscriptions",
            "create subscription",
            json=request.model_dump(by_alias=True),
            idempotent=False,
        )
        return GraphSubscription.model_validate(response.json())

    def renew_subscription(self, subscription_id: str, expiration: datetime) -> GraphSubscription:
        response = self._to_subscription(
            "PATCH",
            subscription_id,
            "renew subscription",
            json={"expirationDateTime": format_utc(expiration)},
        )
        return GraphSubscription.model_validate(response.json())

    def delete_subscription(self, subscription_id: str) -> None:
        with contextlib.suppress(SubscriptionGone):
            self._to_subscription("DELETE", subscription_id, "delete subscription")

    def delta_pages(self, url: str, *, subscription_id: str | None = None) -> Iterator[DeltaPage]:
        """A delta round from `url`: every page, following @odata.nextLink, the last one carrying
        @odata.deltaLink. A 410 (any code), or another 4xx naming an expired sync state, raises
        DeltaLinkGone with the link to start over from ("" when Graph gave none)."""
        while True:
            try:
                response = self._send(
                    "GET",
                    url,
                    "delta",
                    subscription_id=subscription_id,
                    headers={"Prefer": f"odata.maxpagesize={DELTA_PAGE_SIZE}"},
                )
            except UpstreamError as error:
                if error.status == 410 or (is_client_error(error.status) and error.code in RESYNC_CODES):
                    raise DeltaLinkGone(
                        error.location or "", f"{error.code}: {error.upstream_message}"
                    ) from error
                raise
            page = DeltaPage.model_validate(response.json())
            yield page
            if page.next_link:
                url = page.next_link
                continue
            if not page.delta_link:
                raise UpstreamError(
                    service=SERVICE,
                    operation="delta",
                    status=response.status_code,
                    message="a delta page without @odata.nextLink or @odata.deltaLink",
                )
            return

    def latest_delta_link(self, resource: GraphResource, now: datetime) -> str:
        """The link from which only changes made from now on are read: `token=latest` for a
        drive; for Outlook, a full round whose items are passed over (history is not replayed)."""
        if resource.kind == "driveItem":
            first = resource.first_delta_url(self.base_url, now)
            url = f"{first}{'&' if '?' in first else '?'}token=latest"
        else:
            url = resource.first_delta_url(self.base_url, now)
        # delta_pages ends with the page that carries the delta link, or raises.
        *_, last = self.delta_pages(url)
        return last.delta_link or ""

    def _to_subscription(
        self, method: str, subscription_id: str, operation: str, *, json: Any = None
    ) -> requests.Response:
        url = f"{self.base_url}/v1.0/subscriptions/{subscription_id}"
        try:
            return self._send(method, url, operation, json=json, subscription_id=subscription_id)
        except UpstreamError as error:
            if error.status == 404:
                raise SubscriptionGone(subscription_id) from error
            raise

    def _send(
        self,
        method: str,
        url: str,
        operation: str,
        *,
        json: Any = None,
        subscription_id: str | None = None,
        idempotent: bool = True,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        return send(
            self._session,
            method,
            url,
            service=SERVICE,
            operation=operation,
            subscription_id=subscription_id,
            json=json,
            headers={"Authorization": f"Bearer {self._tokens.get_token()}", **(headers or {})},
            idempotent=idempotent,
            policy=self._policy,
            throttle=self.throttle,
        )
