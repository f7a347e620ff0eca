"""SharePoint list subscriptions: 180 days at most, renewed by PATCH, cursor = change token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ...tenancy import inner_scope
from ..base import Subscribed
from .client import ListRef, SharePointClient

if TYPE_CHECKING:
    from ...subscriptions.record import SubscriptionRecord

MAX_LIFETIME = timedelta(days=180)


@dataclass(frozen=True)
class ListSubscriber:
    client: SharePointClient
    notification_url: str

    def max_lifetime(self, record: SubscriptionRecord) -> timedelta:
        return MAX_LIFETIME

    def first_cursor(self, record: SubscriptionRecord, now: datetime) -> str:
        return self.client.current_change_token(list_of(record))

    def subscribe(self, record: SubscriptionRecord, expiration: datetime, client_state: str) -> Subscribed:
        remote = self.client.create_subscription(
            list_of(record),
            notification_url=self.notification_url,
            expiration=expiration,
            client_state=client_state,
        )
        return Subscribed(
            remote.id,
            remote.resource,
            remote.notification_url,
            remote.expiration_date_time,
            self.client.list_title(list_of(record)),
        )

    def renew(self, record: SubscriptionRecord, expiration: datetime) -> datetime:
        self.client.renew_subscription(list_of(record), record.id, expiration)
        return expiration

    def delete(self, record: SubscriptionRecord) -> None:
        self.client.delete_subscription(list_of(record), record.id)


def list_of(record: SubscriptionRecord) -> ListRef:
    return ListRef(record.address, inner_scope(record.scope))
