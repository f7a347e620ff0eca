"""The change sweep: the safety net under notifications.

Every scope whose last completed sync is older than its source's sweep age is read again, whether
or not a notification came (SharePoint gives up after five retries; our own 503s; poisoned messages;
Graph sends driveItem subscriptions no 'missed' event and may announce a drive change 6 hours late):
SWEEP_MAX_AGE_HOURS for SharePoint, GRAPH_SWEEP_MAX_AGE_HOURS for Graph. Each visit is a refreshing read, so a
cursor that found nothing still moves to now (no quiet SharePoint list drifts to the edge of its
60-day change log). One query finds the due scopes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from .alerts import Alerts, Condition
from .change_log import SyncResult
from .checkpoints import Checkpoint, CheckpointStore
from .clock import utc_now
from .read_leases import Outcome, ReadCoordinator

if TYPE_CHECKING:
    from .sources.registry import Sources

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    synced: list[str] = field(default_factory=list)
    changes_written: int = 0
    resyncs: int = 0
    # Being read by a worker at that moment: that read covers them.
    busy: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class ChangeSweep:
    checkpoints: CheckpointStore
    sources: Sources
    reads: ReadCoordinator
    # Signals the scope's sinks that a sync wrote rows (scope, subscription id, row keys, source).
    publish: Callable[[str, str, Sequence[str], str], int]
    # The notification state of a checkpoint's subscription (healthy, late, silent); a gap noted on
    # its health summary, giving the state after it; and the alerts told when it turns silent and
    # back.
    state_of: Callable[[Checkpoint, datetime], str] = lambda checkpoint, at: "healthy"
    note_gap: Callable[[Checkpoint, datetime], str] = lambda checkpoint, at: "healthy"
    alerts: Alerts | None = None
    clock: Callable[[], datetime] = utc_now

    def due(self) -> list[Checkpoint]:
        """The scopes not read within their source's sweep age (one query, for the youngest age)."""
        now = self.clock()
        youngest = min(source.sweep_max_age for source in self.sources)
        return [
            checkpoint
            for checkpoint in self.checkpoints.not_synced_since(now - youngest)
            if checkpoint.last_synced < now - self.sources[checkpoint.source].sweep_max_age
        ]

    def run(self) -> SweepReport:
        report = SweepReport()
        for checkpoint in self.due():
            try:
                coalesced = self.reads.read(
                    checkpoint.source, checkpoint.scope, None, partial(self._read, checkpoint)
                )
                if coalesced.outcome is not Outcome.READ:
                    report.busy.append(checkpoint.scope)
                    continue
                result = SyncResult.combined(coalesced.results)
                self.publish(checkpoint.scope, checkpoint.subscription_id, result.rows, checkpoint.source)
                state = self._note_gap(checkpoint, result)
                self._alert_silence(checkpoint, state)
            except Exception as error:  # one scope failing must not stop the others
                log.error(
                    "sweep: reading changes failed for subscription %s (%s %s): %s",
                    checkpoint.subscription_id,
                    checkpoint.source,
                    checkpoint.scope,
                    error,
                )
                report.failed.append((checkpoint.scope, str(error)))
                continue
            report.synced.append(checkpoint.scope)
            report.changes_written += result.written
            report.resyncs += int(result.resynced)
        return report

    def _note_gap(self, checkpoint: Checkpoint, result: SyncResult) -> str | None:
        """The sweep found changes: if no notification came since the oldest of them, and it is
        older than the source announces changes, notifications are missing (a gap). Returns the
        subscription's state after a gap, None when there was none."""
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
            "sweep: %d change(s) of subscription %s (%s %s) came with no notification, the oldest %d "
            "minutes ago",
            result.written,
            checkpoint.subscription_id,
            checkpoint.source,
            checkpoint.scope,
            unannounced.total_seconds() // 60,
        )
        try:
            return self.note_gap(checkpoint, now)
        except Exception as error:  # the changes are kept; only what the console shows is late
            log.warning(
                "sweep: could not keep the gap on subscription %s: %s", checkpoint.subscription_id, error
            )
            return None

    def _alert_silence(self, checkpoint: Checkpoint, state: str | None) -> None:
        if self.alerts is None:
            return
        if (state or self.state_of(checkpoint, self.clock())) == "silent":
            detail = f"{checkpoint.source} {checkpoint.address}: changes found that no notification announced"
            self.alerts.raise_(checkpoint.subscription_id, Condition.SILENT, detail)
        else:
            self.alerts.recover(checkpoint.subscription_id, Condition.SILENT)

    def _read(self, checkpoint: Checkpoint) -> SyncResult:
        return self.sources[checkpoint.source].reader.sync(checkpoint.target, refresh=True)
