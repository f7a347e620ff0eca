"""One subscription as this service keeps it: never the clientState itself, only its hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from ..models import SubscriptionStatus
from ..sources.base import ReadTarget


def new_client_state() -> str:
    """43 URL-safe characters carrying 32 random bytes."""
    return secrets.token_urlsafe(32)


def hash_client_state(client_state: str) -> str:
    """We keep only a hash of each clientState: the table never holds the shared secret."""
    return hashlib.sha256(client_state.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SubscriptionRecord:
    """One subscription to one `scope` of its `source`. The scope keys the cursor and the change
    log it shares with any subscription that replaces it (a SharePoint list's id, a hash of a Graph
    resource); `address` is where the source is read (a site URL, a Graph resource path) and
    `resource` what the source itself calls the subscribed thing."""

    id: str
    source: str
    scope: str
    address: str
    resource: str
    notification_url: str
    expiration: datetime
    client_state_hash: str
    status: SubscriptionStatus
    created: datetime
    last_renewed: datetime | None = None
    previous_id: str | None = None
    change_type: str | None = None
    # SharePoint: the fields whose values each change row carries (the checkpoint keeps them too).
    fields: tuple[str, ...] = ()
    # What people call it (a list's title), where the source said at subscribe time.
    title: str | None = None

    @property
    def target(self) -> ReadTarget:
        return ReadTarget(self.scope, self.address, self.id)

    def client_state_matches(self, client_state: str | None) -> bool:
        if client_state is None:
            return False
        return hmac.compare_digest(hash_client_state(client_state), self.client_state_hash)

    def renewed(self, expiration: datetime, at: datetime) -> SubscriptionRecord:
        return replace(self, expiration=expiration, last_renewed=at)
