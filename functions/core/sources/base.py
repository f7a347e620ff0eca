"""What every source gives the rest of the service: one small `Source` protocol.

A source is a package under `sources/` (SharePoint lists, Graph resources): its client, its wire
models, how it subscribes (lifetime, renew, recreate), how it reads a scope's changes from a
cursor into change-log rows, and how its notifications are parsed. The worker, the sweep, the
renewal, the intake and the API ask the registry (`sources.Sources`) for the source a record,
checkpoint, route or request names, and never branch on which one it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from ..errors import BadRequest
from ..scopes import ReadTarget

if TYPE_CHECKING:
    from ..change_log import SyncResult
    from ..models import QueuedNotification
    from ..subscriptions.record import SubscriptionRecord

# A source refuses an expiry past its maximum by *its* clock; stay clear of clock skew.
EXPIRY_SAFETY_MARGIN = timedelta(hours=1)


class SubscriptionGone(Exception):
    """The source no longer knows the subscription (expired, or deleted behind our back)."""


class CursorRejected(Exception):
    """The source says the stored cursor is not this scope's, or not a cursor at all: a bug, not
    weather. The message is poisoned at once, its message the reason, instead of being retried
    five times."""


class InvalidSubscriptionRequest(BadRequest):
    """A create request the source cannot subscribe to, with the reason a caller can act on."""


@dataclass(frozen=True)
class Subscribed:
    """What the source answered to a create."""

    id: str
    resource: str
    notification_url: str
    expiration: datetime
    # What people call the watched thing, where the source says (a SharePoint list's title).
    title: str | None = None


@dataclass(frozen=True)
class Draft:
    """A subscription before the source has answered: what it will watch, and until when."""

    scope: str
    address: str
    resource: str
    expiration: datetime
    change_type: str | None = None
    fields: tuple[str, ...] = ()


class Subscriber(Protocol):
    def max_lifetime(self, record: SubscriptionRecord) -> timedelta: ...

    def first_cursor(self, record: SubscriptionRecord, now: datetime) -> str: ...

    def subscribe(
        self, record: SubscriptionRecord, expiration: datetime, client_state: str
    ) -> Subscribed: ...

    def renew(self, record: SubscriptionRecord, expiration: datetime) -> datetime: ...

    def delete(self, record: SubscriptionRecord) -> None: ...


class Reader(Protocol):
    def sync(self, target: ReadTarget, *, refresh: bool = False) -> SyncResult:
        """Read and log every change of the target's scope since its cursor. `refresh` (the
        sweep) also moves a cursor that found nothing to now."""
        ...


class CarriedReader(Protocol):
    def write_carried(self, target: ReadTarget, notifications: Sequence[QueuedNotification]) -> CarriedResult:
        """Log the changes the notifications carry themselves (Teams' rich notifications): no read."""
        ...


@dataclass
class CarriedResult:
    result: SyncResult
    # Items not logged, and why (a bad signature, an unknown certificate): never what they held.
    refused: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EntryKind:
    """What one notification URL accepts: whose entries, of which shape, how one is checked beyond
    its shape (a reason to refuse it, or ""), and what of it the queue message keeps. `trust`:
    why a POST's entries are not to be trusted at all, from its `validationTokens` and its parsed
    entries (Teams), or ""; checked before any storage read."""

    source: str
    model: type[BaseModel]
    check: Callable[[Any], str]
    queued: Callable[[Any], QueuedNotification]
    trust: Callable[[Any, Sequence[Any]], str] | None = None


class Source(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def subscriber(self) -> Subscriber: ...

    @property
    def reader(self) -> Reader: ...

    @property
    def carried(self) -> CarriedReader | None:
        """Where a source whose notifications carry the change logs it (None: every notification
        means "go and read")."""
        ...

    @property
    def request_model(self) -> type[BaseModel]:
        """The management API's create request for this source."""
        ...

    @property
    def entry_kinds(self) -> Mapping[str, EntryKind]:
        """Its notification URLs, by route under /api/notifications/."""
        ...

    @property
    def sweep_max_age(self) -> timedelta:
        """How long a scope may go unread before the sweep reads it: the source's worst delay in
        announcing a change, or the settings' choice."""
        ...

    @property
    def writes_behind(self) -> bool:
        """Whether a read may log rows that sort before rows an earlier read logged (Graph keys
        rows by each change's own time): the sinks' cursors then have to look back."""
        ...

    def draft(self, request: Any, now: datetime) -> Draft:
        """Check a create request and say what it subscribes to; raises InvalidSubscriptionRequest."""
        ...

    def view_fields(self, record: SubscriptionRecord) -> dict[str, Any]:
        """The source's own fields of the API's subscription view (by alias)."""
        ...

    def expected_delay(self, address: str) -> timedelta:
        """How late the source may announce a change at `address`: a change found unannounced
        for longer is a notification gap."""
        ...

    def cursor_issued(self, cursor: str) -> datetime | None:
        """When a cursor was issued, where the cursor says (a SharePoint change token does)."""
        ...

    def warm(self) -> None:
        """Make ready what checking its notifications needs, before the first one (Teams: the
        identity platform's signing keys); the host's warmup runs it."""
        ...
