"""Microsoft Graph resources: OneDrive folders, Outlook mail folders and calendars, read with
delta queries."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ...change_log import ChangeLog
from ...checkpoints import CheckpointStore
from ...models import QueuedNotification
from ...settings import Settings
from ..base import EXPIRY_SAFETY_MARGIN, Draft, EntryKind, InvalidSubscriptionRequest
from ..graph_api import GraphClient, names_lifecycle_event
from .client import GraphResource
from .models import CreateGraphSubscriptionRequest, GraphNotification
from .reader import GRAPH, DeltaReader
from .subscriber import GraphSubscriber

if TYPE_CHECKING:
    from ...subscriptions.record import SubscriptionRecord

__all__ = ["GRAPH", "Graph", "GraphClient", "GraphResource"]


def _names_change(notification: GraphNotification) -> str:
    """A change notification names its change and no lifecycle event."""
    ok = notification.change_type is not None and notification.lifecycle_event is None
    return "" if ok else "malformed entry (changeType)"


def _queued(notification: GraphNotification) -> QueuedNotification:
    return QueuedNotification(
        subscription_id=notification.subscription_id,
        resource=notification.resource,
        tenant_id=notification.tenant_id,
        change_type=notification.change_type,
        lifecycle_event=notification.lifecycle_event,
    )


DRIVE_NOTIFICATION_DELAY = timedelta(hours=6)
OUTLOOK_NOTIFICATION_DELAY = timedelta(minutes=15)
CHANGE_ENTRIES = EntryKind(GRAPH, GraphNotification, _names_change, _queued)
LIFECYCLE_ENTRIES = EntryKind(GRAPH, GraphNotification, names_lifecycle_event, _queued)


@dataclass(frozen=True)
class Graph:
    """The Graph source: change notifications and lifecycle events, one subscription per resource."""

    subscriber: GraphSubscriber
    reader: DeltaReader
    sweep_max_age: timedelta
    name: str = GRAPH
    # Every notification is a hint: the change is read.
    carried: None = None
    request_model: type[BaseModel] = CreateGraphSubscriptionRequest
    # Rows are keyed by each change's own time, and a late delta page can land behind them.
    writes_behind: bool = True
    entry_kinds: Mapping[str, EntryKind] = field(
        default_factory=lambda: {GRAPH: CHANGE_ENTRIES, f"{GRAPH}/lifecycle": LIFECYCLE_ENTRIES}
    )

    @classmethod
    def build(
        cls,
        settings: Settings,
        checkpoints: CheckpointStore,
        change_log: ChangeLog,
        client: GraphClient,
    ) -> Graph:
        return cls(
            subscriber=GraphSubscriber(client, settings.graph_notification_url, settings.graph_lifecycle_url),
            reader=DeltaReader(checkpoints, change_log, client),
            sweep_max_age=timedelta(hours=settings.graph_sweep_max_age_hours),
        )

    def draft(self, request: Any, now: datetime) -> Draft:
        if not isinstance(request, CreateGraphSubscriptionRequest):
            raise InvalidSubscriptionRequest("the request is not a Graph subscription request")
        resource = GraphResource.parse(request.resource)
        return Draft(
            scope=scope_of(resource.path),
            address=resource.path,
            resource=resource.path,
            expiration=now + resource.max_lifetime - EXPIRY_SAFETY_MARGIN,
            change_type=resource.check_change_type(request.change_type),
        )

    def expected_delay(self, address: str) -> timedelta:
        """Graph's stated worst: drive and list notifications up to 6 hours late, Outlook's within
        3 minutes (with the same 15-minute allowance as SharePoint's)."""
        kind = GraphResource.parse(address).kind
        return DRIVE_NOTIFICATION_DELAY if kind == "driveItem" else OUTLOOK_NOTIFICATION_DELAY

    def view_fields(self, record: SubscriptionRecord) -> dict[str, Any]:
        return {}

    def warm(self) -> None:
        """Its notifications are checked against storage alone: nothing to make ready."""

    def cursor_issued(self, cursor: str) -> datetime | None:
        return None


def scope_of(resource: str) -> str:
    """The key of a Graph resource's cursor and change log (table keys may not hold '/')."""
    return "graph-" + hashlib.sha256(resource.lower().encode("utf-8")).hexdigest()[:40]
