"""A sink as this service keeps it. Its URL and secrets are credentials: kept, never returned in
full, never logged."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

TEAMS_WORKFLOW, MESSAGE_CARD, WEBHOOK = "teams-workflow", "message-card", "webhook"
SINK_TYPES = (TEAMS_WORKFLOW, MESSAGE_CARD, WEBHOOK)
# The retired Office 365 connector hosts in Teams (REFERENCE: Connectors).
RETIRED_CONNECTOR_HOST = ".webhook.office.com"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
# After a rotation, batches are signed with both secrets for this long.
ROTATION_OVERLAP = timedelta(hours=24)


class InvalidSink(ValueError):
    pass


class SinkState(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


def new_secret() -> str:
    """Standard Webhooks' form: `whsec_` and base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def check_secret(secret: str) -> str:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSink("secret must be 'whsec_' followed by base64 of 24 to 64 random bytes")
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        raise InvalidSink("secret must be 'whsec_' followed by base64 of 24 to 64 random bytes") from None
    if not 24 <= len(raw) <= 64:
        raise InvalidSink("secret must carry 24 to 64 random bytes")
    return secret


def check_url(sink_type: str, url: str, *, allow_loopback_http: bool) -> str:
    parts = urlsplit(url)
    if not parts.hostname or parts.username or parts.password:
        raise InvalidSink("url must be an absolute https URL")
    if parts.scheme != "https" and not (
        parts.scheme == "http" and allow_loopback_http and parts.hostname in LOOPBACK_HOSTS
    ):
        raise InvalidSink("url must be https (plain http is allowed only to loopback, and only locally)")
    if sink_type == MESSAGE_CARD and parts.hostname.lower().endswith(RETIRED_CONNECTOR_HOST):
        raise InvalidSink(
            "Office 365 connectors (*.webhook.office.com) are retired in Teams: create a Teams workflow "
            "with the 'When a Teams webhook request is received' trigger and add it as a "
            "'teams-workflow' sink instead"
        )
    return url


def mask(url: str) -> str:
    """Enough to recognise a URL, not enough to use it: scheme, host and the last 4 characters."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}/…{url[-4:]}"


@dataclass(frozen=True)
class Sink:
    id: str
    scope: str  # the subscription's scope: sinks follow the list or resource, not one subscription
    subscription_id: str
    type: str
    url: str
    change_types: tuple[str, ...]
    created: datetime
    secret: str | None = None
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None
    state: SinkState = SinkState.ACTIVE
    disabled_reason: str | None = None
    last_delivery: dict[str, str] = field(default_factory=dict)

    def wants(self, change_type: str) -> bool:
        return not self.change_types or change_type in self.change_types

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, and the previous one while the rotation overlap lasts."""
        secrets_ = [self.secret] if self.secret else []
        if self.previous_secret and self.previous_secret_until and now < self.previous_secret_until:
            secrets_.append(self.previous_secret)
        return secrets_

    def view(self) -> dict[str, object]:
        body: dict[str, object] = {
            "id": self.id,
            "subscriptionId": self.subscription_id,
            "type": self.type,
            "url": mask(self.url),
            "changeTypes": list(self.change_types),
            "state": self.state.value,
            "createdDateTime": self.created.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        if self.disabled_reason:
            body["disabledReason"] = self.disabled_reason
        if self.last_delivery:
            body["lastDelivery"] = dict(self.last_delivery)
        if self.previous_secret_until:
            body["previousSecretValidUntil"] = self.previous_secret_until.isoformat(
                timespec="seconds"
            ).replace("+00:00", "Z")
        return body
