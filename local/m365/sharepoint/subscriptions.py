"""List webhooks in the emulator's SharePoint: the rules a subscription request meets (an
absolute notification URL, an expiry within 180 days, a clientState of at most 255 characters),
and that only the app that created a subscription may read, renew or delete it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..clock import parse_time
from . import errors
from .errors import SharePointError
from .model import Subscription

if TYPE_CHECKING:
    from ..clock import Clock
    from .model import Site, SpList

MAX_SUBSCRIPTION_LIFETIME = timedelta(days=180)


class ListSubscriptions:
    """The subscription operations of `SharePointState`, which provides the sites and the clock."""

    clock: Clock
    sites: dict[str, Site]

    def check_subscription_request(self, body: dict[str, Any]) -> tuple[str, datetime, str | None]:
        notification_url = body.get("notificationUrl")
        if not isinstance(notification_url, str) or not notification_url.startswith(("https://", "http://")):
            raise SharePointError(400, errors.ARGUMENT, "The notificationUrl must be an absolute URL.")
        now = self.clock.now()
        if body.get("expirationDateTime") is None:
            expiration = now + MAX_SUBSCRIPTION_LIFETIME
        else:
            expiration = parse_sharepoint_time(body.get("expirationDateTime"))
        if expiration <= now:
            raise SharePointError(
                400, errors.ARGUMENT_OUT_OF_RANGE, "The expirationDateTime must be in the future."
            )
        if expiration > now + MAX_SUBSCRIPTION_LIFETIME:
            raise SharePointError(
                400,
                errors.ARGUMENT_OUT_OF_RANGE,
                "The expirationDateTime must not be more than 180 days from now.",
            )
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 255):
            raise SharePointError(400, errors.ARGUMENT, "The clientState is not valid.")
        return notification_url, expiration, client_state

    def add_subscription(
        self,
        sp_list: SpList,
        notification_url: str,
        expiration: datetime,
        client_state: str | None,
        app_id: str,
    ) -> Subscription:
        subscription = Subscription(
            str(uuid.uuid4()), sp_list.id, notification_url, expiration, client_state, app_id
        )
        sp_list.subscriptions[subscription.id] = subscription
        return subscription

    def get_subscription(self, sp_list: SpList, subscription_id: str, app_id: str) -> Subscription:
        """Only the app that created a subscription may read, renew or delete it."""
        self.expire_subscriptions(sp_list)
        subscription = sp_list.subscriptions.get(subscription_id.lower().strip("{}"))
        if subscription is None:
            raise errors.subscription_not_found(subscription_id)
        if subscription.app_id != app_id:
            raise errors.access_denied()
        return subscription

    def renew_subscription(
        self, sp_list: SpList, subscription_id: str, body: dict[str, Any], app_id: str
    ) -> None:
        subscription = self.get_subscription(sp_list, subscription_id, app_id)
        if "expirationDateTime" in body:
            expiration = parse_sharepoint_time(body["expirationDateTime"])
            now = self.clock.now()
            if not now < expiration <= now + MAX_SUBSCRIPTION_LIFETIME:
                raise SharePointError(
                    400,
                    errors.ARGUMENT_OUT_OF_RANGE,
                    "The expirationDateTime must be in the future and not more than 180 days from now.",
                )
            subscription.expiration = expiration
        if "notificationUrl" in body:
            subscription.notification_url = body["notificationUrl"]

    def delete_subscription(self, sp_list: SpList, subscription_id: str, app_id: str) -> None:
        self.get_subscription(sp_list, subscription_id, app_id)
        del sp_list.subscriptions[subscription_id.lower().strip("{}")]

    def find_subscription(self, subscription_id: str) -> tuple[Site, SpList, Subscription] | None:
        for site in self.sites.values():
            for sp_list in site.lists.values():
                if subscription_id in sp_list.subscriptions:
                    return site, sp_list, sp_list.subscriptions[subscription_id]
        return None

    def expire_subscriptions(self, sp_list: SpList) -> None:
        """SharePoint removes a subscription once it has expired."""
        now = self.clock.now()
        for subscription_id in [s.id for s in sp_list.subscriptions.values() if s.expiration <= now]:
            del sp_list.subscriptions[subscription_id]


def parse_sharepoint_time(value: Any) -> datetime:
    """SharePoint reads an ISO 8601 time in any zone (a naive one as UTC)."""
    if not isinstance(value, str):
        raise SharePointError(400, errors.ARGUMENT, "The expirationDateTime is required.")
    try:
        parsed = parse_time(value)
    except ValueError:
        raise SharePointError(400, errors.ARGUMENT, f"'{value}' is not a valid date and time.") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
