"""How a subscription is shown and how it is doing: the management API's views, its health, and
the one place that says whether it is healthy, late or silent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..checkpoints import Checkpoint, CheckpointStore
from ..clock import utc_now
from ..models import (
    FailureView,
    NotificationGaps,
    SinkDeliveryState,
    SubscriptionHealth,
    SubscriptionView,
    format_utc,
)
from ..tenancy import scope_tenant
from .record import NotificationState, SubscriptionRecord
from .renewal import renewal_due_at
from .store import SubscriptionStore

if TYPE_CHECKING:
    from ..sources.registry import Sources


@dataclass(frozen=True)
class SubscriptionViews:
    store: SubscriptionStore
    checkpoints: CheckpointStore
    sources: Sources
    # No notification for this long, while reads find unannounced changes: "silent".
    silent_after: timedelta = timedelta(hours=24)
    # The deployment's own tenant (SHAREPOINT_TENANT_ID), which owns every scope naming none.
    home_tenant: str | None = None
    clock: Callable[[], datetime] = utc_now

    def state(self, record: SubscriptionRecord, at: datetime | None = None) -> NotificationState:
        """Healthy, late or silent, from the record's health summary."""
        return record.health.state(record.created, at or self.clock(), self.silent_after)

    def notification_state(self, checkpoint: Checkpoint, at: datetime) -> str:
        """The state at `at` of the subscription that follows the checkpoint's scope, as it is
        stored now (healthy when there is no record of it any more)."""
        record = self.store.get(checkpoint.subscription_id, checkpoint.source)
        return "healthy" if record is None else self.state(record, at)

    def note_gap(self, checkpoint: Checkpoint, at: datetime) -> str:
        """A read no notification started found changes no notification announced: keep it on the
        record's health summary (what every list row shows); returns the state after it."""
        record = self.store.get(checkpoint.subscription_id, checkpoint.source)
        if record is None:
            return "healthy"
        updated = self.store.update_health(
            record, lambda summary: summary.with_gap(at, checkpoint.last_notification)
        )
        return self.state(updated, at)

    def view(self, record: SubscriptionRecord, window: timedelta) -> SubscriptionView:
        """The record as the management API shows it, with when it will be renewed."""
        due = format_utc(renewal_due_at(record, window, self.sources))
        return self.plain_view(record).model_copy(update={"next_renewal_date_time": due})

    def plain_view(self, record: SubscriptionRecord) -> SubscriptionView:
        """The record as the API shows it: shared fields, then its source's own."""
        return SubscriptionView.model_validate(
            {
                "id": record.id,
                "source": record.source,
                "tenantId": scope_tenant(record.scope) or self.home_tenant,
                "resource": record.resource,
                "changeType": record.change_type,
                "notificationUrl": record.notification_url,
                "expirationDateTime": format_utc(record.expiration),
                "status": record.status,
                "createdDateTime": format_utc(record.created),
                "lastRenewedDateTime": format_utc(record.last_renewed) if record.last_renewed else None,
                "previousId": record.previous_id,
                "title": record.title,
                "ignoreChangesBy": list(record.ignore_changes_by) or None,
                "healthSummary": {
                    "state": self.state(record),
                    "lastGapDateTime": _utc_or_none(record.health.gap_at),
                    "readsFailingSinceDateTime": _utc_or_none(record.health.failing_since),
                },
                **self.sources[record.source].view_fields(record),
            }
        )

    def health(self, record: SubscriptionRecord, sinks: Sequence[SinkDeliveryState]) -> SubscriptionHealth:
        """How the subscription is doing, from its list's checkpoint (one read) and its sinks."""
        states = list(sinks)
        checkpoint = self.checkpoints.read(record.scope, record.source)
        if checkpoint is None:
            return SubscriptionHealth(sinks=len(sinks), sink_states=states)
        last_failure = None
        if checkpoint.consecutive_failures and checkpoint.last_failed is not None:
            last_failure = FailureView(
                reason=checkpoint.last_failure or "", date_time=format_utc(checkpoint.last_failed)
            )
        last_notification = checkpoint.last_notification
        issued = self.sources[record.source].cursor_issued(checkpoint.cursor)
        return SubscriptionHealth(
            sinks=len(sinks),
            sink_states=states,
            last_notification_date_time=format_utc(last_notification) if last_notification else None,
            last_synced_date_time=format_utc(checkpoint.last_synced),
            change_token_date_time=format_utc(issued) if issued else None,
            consecutive_failures=checkpoint.consecutive_failures,
            last_failure=last_failure,
            state=self.state(record),
            notification_gaps=NotificationGaps(
                count=checkpoint.gap_count,
                last_date_time=format_utc(checkpoint.last_gap_at) if checkpoint.last_gap_at else None,
                longest_seconds=round(checkpoint.longest_gap_seconds),
            ),
        )


def _utc_or_none(moment: datetime | None) -> str | None:
    return format_utc(moment) if moment else None
