"""One subscription as this service keeps it: never the clientState itself, only its hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from ..models import SubscriptionStatus
from ..scopes import ReadTarget


def new_client_state() -> str:
    """43 URL-safe characters carrying 32 random bytes."""
    return secrets.token_urlsafe(32)


def hash_client_state(client_state: str) -> str:
    """We keep only a hash of each clientState: the table never holds the shared secret."""
    return hashlib.sha256(client_state.encode("utf-8")).hexdigest()


NotificationState = Literal["healthy", "late", "silent"]


@dataclass(frozen=True)
class HealthSummary:
    """What every row of a subscription list shows of its health, kept on the record so a list
    costs no read per row. Written only when it changes: when the sweep finds a notification gap,
    with the first notification after one, when reads start failing and when they complete again;
    never once per notification."""

    # When changes were last found that no notification announced.
    gap_at: datetime | None = None
    # The newest notification known when the summary was written: after `gap_at`, notifications
    # came again, and later ones change nothing here.
    heard_at: datetime | None = None
    # Reads have failed since then, none completed (None when the last read completed).
    failing_since: datetime | None = None

    def state(self, created: datetime, now: datetime, silent_after: timedelta) -> NotificationState:
        """`silent`: changes came unannounced and no notification for `silent_after`; `late`:
        notifications come, but a gap was found within `silent_after`; else `healthy`."""
        if self.gap_at is None:
            return "healthy"
        heard = self.heard_at or created
        if self.gap_at >= heard and now - heard > silent_after:
            return "silent"
        return "late" if now - self.gap_at <= silent_after else "healthy"

    def with_gap(self, at: datetime, heard: datetime | None) -> HealthSummary:
        return replace(self, gap_at=_latest(self.gap_at, at), heard_at=_latest(self.heard_at, heard))

    def notified(self, at: datetime) -> HealthSummary:
        """A notification was read: worth keeping only as the first after a gap."""
        if self.gap_at is None or (self.heard_at is not None and self.heard_at > self.gap_at):
            return self
        return replace(self, heard_at=_latest(self.heard_at, at))

    def read_failed(self, at: datetime) -> HealthSummary:
        return self if self.failing_since is not None else replace(self, failing_since=at)

    def read_completed(self) -> HealthSummary:
        return replace(self, failing_since=None)


def _latest(kept: datetime | None, new: datetime | None) -> datetime | None:
    if kept is None or new is None:
        return kept or new
    return max(kept, new)


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
    # Changes by these (application ids, user principal names) go to none of its sinks.
    ignore_changes_by: tuple[str, ...] = ()
    health: HealthSummary = HealthSummary()
    # The table entity's ETag when the record was read (None for one not stored yet).
    etag: str | None = field(default=None, compare=False)

    @property
    def target(self) -> ReadTarget:
        return ReadTarget(self.scope, self.address, self.id, self.title)

    def client_state_matches(self, client_state: str | None) -> bool:
        if client_state is None:
            return False
        return hmac.compare_digest(hash_client_state(client_state), self.client_state_hash)

    def renewed(self, expiration: datetime, at: datetime) -> SubscriptionRecord:
        return replace(self, expiration=expiration, last_renewed=at)
