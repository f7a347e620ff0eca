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

from .change_log import SyncResult
from .checkpoints import Checkpoint, CheckpointStore
from .clock import utc_now
from .gaps import GapWatch
from .read_leases import Outcome, ReadCoordinator
from .tenants.directory import Tenancy, TenantNotFound, TenantUnavailable

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
    # Their tenant is not served now (revoked): read from the same cursor once it consents again.
    tenant_held: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChangeSweep:
    checkpoints: CheckpointStore
    sources: Sources
    reads: ReadCoordinator
    # Signals the scope's sinks that a sync wrote rows (scope, subscription id, row keys, source).
    publish: Callable[[str, str, Sequence[str], str], int]
    # Changes found that no notification announced: counted, kept, alerted.
    gaps: GapWatch
    tenancy: Tenancy
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
                with self.tenancy.acting(checkpoint.scope):
                    coalesced = self.reads.read(
                        checkpoint.source, checkpoint.scope, None, partial(self._read, checkpoint)
                    )
                if coalesced.outcome is not Outcome.READ:
                    report.busy.append(checkpoint.scope)
                    continue
                result = SyncResult.combined(coalesced.results)
                self.publish(checkpoint.scope, checkpoint.subscription_id, result.rows, checkpoint.source)
                self.gaps.after_read(checkpoint, result)
            except (TenantUnavailable, TenantNotFound):
                report.tenant_held.append(checkpoint.scope)
                continue
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

    def _read(self, checkpoint: Checkpoint) -> SyncResult:
        return self.sources[checkpoint.source].reader.sync(checkpoint.target, refresh=True)
