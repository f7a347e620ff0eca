"""Notification gaps: changes that a read not started by a notification (the sweep, the read after
a recreate) found, older than their source announces changes, with no notification since the
oldest of them. Each is counted on the scope's checkpoint and kept on the subscription's health
summary; a silence is alerted, and its end."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .alerts import Alerts, Condition
from .change_log import SyncResult
from .checkpoints import Checkpoint, CheckpointStore
from .clock import utc_now

if TYPE_CHECKING:
    from .sources.registry import Sources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GapWatch:
    checkpoints: CheckpointStore
    sources: Sources
    alerts: Alerts
    # The notification state of a checkpoint's subscription (healthy, late, silent) at a time;
    # and a gap noted on its health summary, giving the state after it.
    state_of: Callable[[Checkpoint, datetime], str]
    note_gap: Callable[[Checkpoint, datetime], str]
    clock: Callable[[], datetime] = utc_now

    def after_read(self, checkpoint: Checkpoint, result: SyncResult) -> None:
        """`checkpoint` as it was before the read, and what the read found."""
        state = self._note_gap(checkpoint, result)
        if not self.alerts.sink.sends:
            return  # nothing to raise, so no need to read the state
        if (state or self.state_of(checkpoint, self.clock())) == "silent":
            detail = f"{checkpoint.source} {checkpoint.address}: changes found that no notification announced"
            self.alerts.raise_(checkpoint.subscription_id, Condition.SILENT, detail)
        else:
            self.alerts.recover(checkpoint.subscription_id, Condition.SILENT)

    def _note_gap(self, checkpoint: Checkpoint, result: SyncResult) -> str | None:
        """The subscription's state after a gap, None when the read found none."""
        if not result.written or result.oldest_change is None:
            return None
        now = self.clock()
        unannounced = now - result.oldest_change
        announced = (
            checkpoint.last_notification is not None and checkpoint.last_notification >= result.oldest_change
        )
        source = self.sources[checkpoint.source]
        if announced or unannounced <= source.expected_delay(checkpoint.address):
            return None
        self.checkpoints.record_gap(checkpoint.scope, unannounced, now, checkpoint.source)
        log.warning(
            "%d change(s) of subscription %s (%s %s) came with no notification, the oldest %d minutes ago",
            result.written,
            checkpoint.subscription_id,
            checkpoint.source,
            checkpoint.scope,
            unannounced.total_seconds() // 60,
        )
        try:
            return self.note_gap(checkpoint, now)
        except Exception as error:  # the changes are kept; only what the console shows is late
            log.warning("could not keep the gap on subscription %s: %s", checkpoint.subscription_id, error)
            return None
