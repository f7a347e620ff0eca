"""Microsoft Graph over REST, for every source that talks to it (OneDrive and Outlook, Teams):
subscriptions created, renewed and deleted, and delta rounds followed page by page. One client per
deployment, so that one throttle holds every call once Graph answers 429: Graph counts an app's
requests per tenant across all its resources."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from ..auth import TokenProvider
from ..models import UtcDatetime, WireModel, format_utc, guid
from ..outbound import DEFAULT_POLICY, RetryPolicy, ServiceThrottle, UpstreamError, new_session, send
from .base import SubscriptionGone

if TYPE_CHECKING:
    import requests

SERVICE = "graph"
DELTA_PAGE_SIZE = 200
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


class GraphChangeEntry(WireModel):
    """One entry of a Graph change or lifecycle notification (`value[]`), for every resource."""

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


def graph_time(value: Any) -> datetime | None:
    """A time as Graph writes it (`2026-12-07T10:00:00.123Z`), or None for anything else."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def names_lifecycle_event(notification: GraphChangeEntry) -> str:
    """A lifecycle entry names its event and no change."""
    ok = notification.lifecycle_event is not None and notification.change_type is None
    return "" if ok else "malformed entry (lifecycleEvent)"


class GraphSubscriptionRequest(WireModel):
    change_type: str = Field(alias="changeType")
    notification_url: str = Field(alias="notificationUrl")
    lifecycle_notification_url: str = Field(alias="lifecycleNotificationUrl")
    resource: str
    expiration_date_time: str = Field(alias="expirationDateTime")
    client_state: str = Field(alias="clientState", max_length=128)
    latest_supported_tls_version: str = Field(default="v1_2", alias="latestSupportedTlsVersion")
    # Rich notifications (Teams): the change itself, encrypted to this certificate's public key.
    include_resource_data: bool | None = Field(default=None, alias="includeResourceData")
    encryption_certificate: str | None = Field(default=None, alias="encryptionCertificate")
    encryption_certificate_id: str | None = Field(
        default=None, alias="encryptionCertificateId", max_length=128
    )


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
            json=request.model_dump(by_alias=True, exclude_none=True),
            idempotent=False,
        )
        return GraphSubscription.model_validate(response.json())

    def renew_subscription(
        self, subscription_id: str, expiration: datetime, changes: dict[str, str] | None = None
    ) -> GraphSubscription:
        """PATCH the expiry, and `changes` with it (Teams: a new encryption certificate)."""
        response = self._to_subscription(
            "PATCH",
            subscription_id,
            "renew subscription",
            json={"expirationDateTime": format_utc(expiration), **(changes or {})},
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

    def get(self, url: str, operation: str, *, subscription_id: str | None = None) -> dict[str, Any]:
        response = self._send("GET", url, operation, subscription_id=subscription_id)
        document = response.json()
        if not isinstance(document, dict):
            raise UpstreamError(
                service=SERVICE, operation=operation, status=response.status_code, message="not a JSON object"
            )
        return document

    def list_pages(
        self, url: str, operation: str, *, subscription_id: str | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Each page of a collection, following @odata.nextLink."""
        next_url: str | None = url
        while next_url:
            page = DeltaPage.model_validate(self.get(next_url, operation, subscription_id=subscription_id))
            yield page.value
            next_url = page.next_link

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
