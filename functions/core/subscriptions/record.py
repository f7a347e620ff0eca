"""One subscription as this service keeps it: never the clientState itself, only its hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from ..models import SubscriptionStatus, SubscriptionView, format_utc


def new_client_state() -> str:
    """43 URL-safe characters carrying 32 random bytes."""
    return secrets.token_urlsafe(32)


def hash_client_state(client_state: str) -> str:
    """We keep only a hash of each clientState: the table never holds the shared secret."""
    return hashlib.sha256(client_state.encode("utf-8")).hexdigest()


SHAREPOINT, GRAPH = "sharepoint", "graph"


def graph_scope(resource: str) -> str:
    """The key of a Graph resource's cursor and change log (table keys may not hold '/')."""
    return "graph-" + hashlib.sha256(resource.lower().encode("utf-8")).hexdigest()[:40]


@dataclass(frozen=True)
class SubscriptionRecord:
    """One subscription. `scope` keys the cursor and the change log it shares with any
    subscription that replaces it: the list id for SharePoint, a hash of the resource for Graph."""

    id: str
    site_url: str
    list_id: str
    resource: str
    notification_url: str
    expiration: datetime
    client_state_hash: str
    status: SubscriptionStatus
    created: datetime
    last_renewed: datetime | None = None
    previous_id: str | None = None
    source: str = SHAREPOINT
    change_type: str | None = None

    @property
    def scope(self) -> str:
        return self.list_id

    def client_state_matches(self, client_state: str | None) -> bool:
        if client_state is None:
            return False
        return hmac.compare_digest(hash_client_state(client_state), self.client_state_hash)

    def renewed(self, expiration: datetime, at: datetime) -> SubscriptionRecord:
        return replace(self, expiration=expiration, last_renewed=at)

    def to_view(self) -> SubscriptionView:
        sharepoint = self.source == SHAREPOINT
        return SubscriptionView(
            id=self.id,
            source=GRAPH if self.source == GRAPH else SHAREPOINT,
            site_url=self.site_url if sharepoint else None,
            list_id=self.list_id if sharepoint else None,
            resource=self.resource,
            change_type=self.change_type,
            notification_url=self.notification_url,
            expiration_date_time=format_utc(self.expiration),
            status=self.status,
            created_date_time=format_utc(self.created),
            last_renewed_date_time=format_utc(self.last_renewed) if self.last_renewed else None,
            previous_id=self.previous_id,
        )
