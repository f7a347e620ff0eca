"""What differs between sources when subscribing: where the subscription lives, how long it may
live, how it is renewed, and where its change feed starts. The service and the renewal timer
use these and do not know which source they talk to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ..models import format_utc
from ..sources.graph import GraphResource, GraphSource, GraphSubscriptionRequest
from ..sources.sharepoint import ListRef, SharePointSource
from .record import GRAPH, SHAREPOINT, SubscriptionRecord

# A source refuses an expiry past its maximum by *its* clock; stay clear of clock skew.
EXPIRY_SAFETY_MARGIN = timedelta(hours=1)
SHAREPOINT_MAX_LIFETIME = timedelta(days=180)


@dataclass(frozen=True)
class Subscribed:
    """What the source answered to a create."""

    id: str
    resource: str
    notification_url: str
    expiration: datetime


class Subscriber(Protocol):
    @property
    def source(self) -> str: ...

    def max_lifetime(self, record: SubscriptionRecord) -> timedelta: ...

    def first_cursor(self, record: SubscriptionRecord, now: datetime) -> str: ...

    def subscribe(
        self, record: SubscriptionRecord, expiration: datetime, client_state: str
    ) -> Subscribed: ...

    def renew(self, record: SubscriptionRecord, expiration: datetime) -> datetime: ...

    def delete(self, record: SubscriptionRecord) -> None: ...


@dataclass(frozen=True)
class SharePointSubscriber:
    client: SharePointSource
    notification_url: str
    source: str = SHAREPOINT

    def max_lifetime(self, record: SubscriptionRecord) -> timedelta:
        return SHAREPOINT_MAX_LIFETIME

    def first_cursor(self, record: SubscriptionRecord, now: datetime) -> str:
        return self.client.current_change_token(_list(record))

    def subscribe(self, record: SubscriptionRecord, expiration: datetime, client_state: str) -> Subscribed:
        remote = self.client.create_subscription(
            _list(record),
            notification_url=self.notification_url,
            expiration=expiration,
            client_state=client_state,
        )
        return Subscribed(remote.id, remote.resource, remote.notification_url, remote.expiration_date_time)

    def renew(self, record: SubscriptionRecord, expiration: datetime) -> datetime:
        self.client.renew_subscription(_list(record), record.id, expiration)
        return expiration

    def delete(self, record: SubscriptionRecord) -> None:
        self.client.delete_subscription(_list(record), record.id)


@dataclass(frozen=True)
class GraphSubscriber:
    client: GraphSource
    notification_url: str
    lifecycle_url: str
    source: str = GRAPH

    def max_lifetime(self, record: SubscriptionRecord) -> timedelta:
        return GraphResource.parse(record.resource).max_lifetime

    def first_cursor(self, record: SubscriptionRecord, now: datetime) -> str:
        return self.client.latest_delta_link(GraphResource.parse(record.resource), now)

    def subscribe(self, record: SubscriptionRecord, expiration: datetime, client_state: str) -> Subscribed:
        remote = self.client.create_subscription(
            GraphSubscriptionRequest(
                change_type=record.change_type or "updated",
                notification_url=self.notification_url,
                lifecycle_notification_url=self.lifecycle_url,
                resource=record.resource,
                expiration_date_time=format_utc(expiration),
                client_state=client_state,
            )
        )
        return Subscribed(remote.id, remote.resource, remote.notification_url, remote.expiration_date_time)

    def renew(self, record: SubscriptionRecord, expiration: datetime) -> datetime:
        return self.client.renew_subscription(record.id, expiration).expiration_date_time

    def delete(self, record: SubscriptionRecord) -> None:
        self.client.delete_subscription(record.id)

    def reauthorize(self, record: SubscriptionRecord) -> None:
        self.client.reauthorize_subscription(record.id)


def _list(record: SubscriptionRecord) -> ListRef:
    return ListRef(record.site_url, record.list_id)
