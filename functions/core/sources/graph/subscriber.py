"""Graph subscriptions: lifetime per resource, renewed by PATCH, reauthorized on request, cursor =
delta link."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ...models import format_utc
from ..base import Subscribed
from ..graph_api import GraphClient, GraphSubscriptionRequest
from .client import GraphResource, latest_delta_link

if TYPE_CHECKING:
    from ...subscriptions.record import SubscriptionRecord


@dataclass(frozen=True)
class GraphSubscriber:
    client: GraphClient
    notification_url: str
    lifecycle_url: str

    def max_lifetime(self, record: SubscriptionRecord) -> timedelta:
        return GraphResource.parse(record.resource).max_lifetime

    def first_cursor(self, record: SubscriptionRecord, now: datetime) -> str:
        return latest_delta_link(self.client, GraphResource.parse(record.resource), now)

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
