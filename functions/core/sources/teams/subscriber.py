"""Teams subscriptions: rich notifications (`includeResourceData`) encrypted to the current
certificate, a lifecycle URL always (Graph requires it past one hour), renewed by a PATCH that also
moves the subscription to the current certificate after a rollover."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote

from ...models import format_utc
from ..base import InvalidSubscriptionRequest, Subscribed
from ..graph_api import GraphClient, GraphSubscriptionRequest
from .crypto import DecryptionKey, DecryptionKeys
from .resources import MAX_LIFETIME, TeamsResource, filter_time

if TYPE_CHECKING:
    from ...subscriptions.record import SubscriptionRecord

# A catch-up read's cursor for chats and the tenant-wide resources: the time it reads from.
SINCE_PREFIX = "since:"


@dataclass(frozen=True)
class TeamsSubscriber:
    client: GraphClient
    keys: DecryptionKeys
    notification_url: str
    lifecycle_url: str

    def max_lifetime(self, record: SubscriptionRecord) -> timedelta:
        return MAX_LIFETIME

    def first_cursor(self, record: SubscriptionRecord, now: datetime) -> str:
        resource = TeamsResource.parse(record.resource)
        if resource.kind == "channel":
            *_, last = self.client.delta_pages(resource.delta_url(self.client.base_url, now))
            return last.delta_link or ""
        return SINCE_PREFIX + filter_time(now)

    def subscribe(self, record: SubscriptionRecord, expiration: datetime, client_state: str) -> Subscribed:
        certificate = self._certificate()
        resource = TeamsResource.parse(record.resource)
        remote = self.client.create_subscription(
            GraphSubscriptionRequest(
                change_type=record.change_type or "created,updated,deleted",
                notification_url=self.notification_url,
                lifecycle_notification_url=self.lifecycle_url,
                resource=resource.path,
                expiration_date_time=format_utc(expiration),
                client_state=client_state,
                include_resource_data=True,
                encryption_certificate=certificate.certificate_base64,
                encryption_certificate_id=certificate.certificate_id,
            )
        )
        return Subscribed(
            remote.id,
            remote.resource,
            remote.notification_url,
            remote.expiration_date_time,
            title=record.title or self._title(resource),
        )

    def renew(self, record: SubscriptionRecord, expiration: datetime) -> datetime:
        certificate = self._certificate()
        # Always the current certificate: after a rollover, the next renewal moves it over.
        changes = {
            "encryptionCertificate": certificate.certificate_base64,
            "encryptionCertificateId": certificate.certificate_id,
        }
        return self.client.renew_subscription(record.id, expiration, changes).expiration_date_time

    def delete(self, record: SubscriptionRecord) -> None:
        self.client.delete_subscription(record.id)

    def _certificate(self) -> DecryptionKey:
        if self.keys.current is None:
            raise InvalidSubscriptionRequest(
                "Teams messages come encrypted: set TEAMS_CERTIFICATE (docs/teams.md) before subscribing"
            )
        return self.keys.current

    def _title(self, resource: TeamsResource) -> str:
        """What people call it: '#' and the channel's name, or the chat's topic."""
        base = self.client.base_url
        if resource.kind == "channel":
            channel = self.client.get(
                f"{base}/v1.0/teams/{resource.team_id}/channels/{quote(resource.channel_id or '', safe=':@')}"
                "?$select=displayName",
                "get channel",
            )
            return f"#{channel.get('displayName') or 'channel'}"
        if resource.kind == "chat":
            chat = self.client.get(
                f"{base}/v1.0/chats/{quote(resource.chat_id or '', safe=':@')}?$select=topic,chatType",
                "get chat",
            )
            return str(chat.get("topic") or f"a {chat.get('chatType') or 'chat'} chat")
        return "every channel" if resource.kind == "allChannels" else "every chat"
