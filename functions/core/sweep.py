"""The change sweep: the safety net under notifications.

Every list (and Graph resource) whose last completed sync is older than SWEEP_MAX_AGE_HOURS is read
again, whether or not a notification came (SharePoint gives up after five retries; our own 503s;
poisoned messages; Graph sends driveItem subscriptions no 'missed' event).
Each visit also moves the list's checkpoint to its current change token, so no quiet list drifts to
the edge of SharePoint's 60-day change log. One query finds the due lists; each costs one token
read and one GetChanges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from .change_log import SyncResult
from .checkpoints import Checkpoint, CheckpointStore
from .processing import Worker, utc_now
from .read_leases import Outcome
from .sources.sharepoint import ListRef

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
    worker: Worker
    max_age: timedelta
    clock: Callable[[], datetime] = utc_now

    def run(self) -> SweepReport:
        report = SweepReport()
        for checkpoint in self.checkpoints.not_synced_since(self.clock() - self.max_age):
            try:
                coalesced = self.worker.reads.read(
                    checkpoint.source, checkpoint.list_id, None, partial(self._read, checkpoint)
                )
                if coalesced.outcome is not Outcome.READ:
                    report.busy.append(checkpoint.list_id)
                    continue
                result = SyncResult.combined(coalesced.results)
                self.worker.publish(
                    checkpoint.list_id, checkpoint.subscription_id, result.rows, checkpoint.source
                )
            except Exception as error:  # one list failing must not stop the others
                log.error(
                    "sweep: reading changes failed for subscription %s (list %s): %s",
                    checkpoint.subscription_id,
                    checkpoint.list_id,
                    error,
                )
                report.failed.append((checkpoint.list_id, str(error)))
                continue
            report.synced.append(checkpoint.list_id)
            report.changes_written += result.written
            report.resyncs += int(result.resynced)
        return report

    def _read(self, checkpoint: Checkpoint) -> SyncResult:
        if checkpoint.source == "graph":
            # driveItem subscriptions get no 'missed' event: this is their only safety net.
            return self.worker.graph.sync(checkpoint.list_id, checkpoint.site_url, checkpoint.subscription_id)
        target = ListRef(checkpoint.site_url, checkpoint.list_id)
        return self.worker.sync_list(target, checkpoint.subscription_id, refresh_token=True)
