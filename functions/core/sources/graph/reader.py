"""Reading a Graph resource's changes: a delta round from the stored delta link to the next one.

Rows are written page by page; the new delta link is stored only when the round is complete, under
the checkpoint's ETag, so a round that finishes after a newer one never overwrites it. A `410`
means the link is no use any more: the round starts over from the link Graph gives, with a resync
entry, as for SharePoint's too-old change token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...change_log import ChangeLog, SyncResult
from ...checkpoints import Checkpoint, CheckpointConflict, CheckpointStore
from ...clock import utc_now
from ...scopes import ReadTarget, RowScope
from ..graph_api import DeltaLinkGone, GraphClient
from .client import GraphResource, latest_delta_link
from .rows import change_row, resync_rows

log = logging.getLogger(__name__)

GRAPH = "graph"


@dataclass(frozen=True)
class DeltaReader:
    checkpoints: CheckpointStore
    change_log: ChangeLog
    client: GraphClient
    clock: Callable[[], datetime] = utc_now

    def sync(self, target: ReadTarget, *, refresh: bool = False) -> SyncResult:
        """A delta round; `refresh` changes nothing: a round always ends with a new link."""
        scope, resource, subscription_id = target.scope, target.address, target.subscription_id
        checkpoint = self.checkpoints.read(scope, GRAPH)
        rows_scope = RowScope(subscription_id, GRAPH, resource=resource)
        if checkpoint is None:
            link = latest_delta_link(self.client, GraphResource.parse(resource), self.clock())
            self.checkpoints.start(
                scope,
                address=resource,
                subscription_id=subscription_id,
                cursor=link,
                at=self.clock(),
                source=GRAPH,
            )
            log.error(
                "no delta link was stored for %s; reading from now on (subscription %s)",
                resource,
                subscription_id,
            )
            return SyncResult(0)
        started = self.clock()
        keys: list[str] = []
        times: list[datetime] = []
        try:
            for page in self.client.delta_pages(checkpoint.cursor, subscription_id=subscription_id):
                rows = [change_row(rows_scope, item, started, checkpoint.last_synced) for item in page.value]
                keys += self._write(scope, rows)
                # A removal has no time of its own (it is stamped with the read): not counted.
                times += [row["time"] for row in rows if row["changeType"] != "delete"]
                if page.delta_link:
                    self._commit(checkpoint, page.delta_link, started)
        except DeltaLinkGone as gone:
            keys += self._resync(scope, rows_scope, checkpoint, gone, resource)
            return SyncResult(len(keys), resynced=True, rows=tuple(keys))
        log.info("read %d changes for subscription %s (%s)", len(keys), subscription_id, resource)
        return SyncResult(len(keys), rows=tuple(keys), oldest_change=min(times) if times else None)

    def _resync(
        self, scope: str, rows_scope: RowScope, checkpoint: Checkpoint, gone: DeltaLinkGone, resource: str
    ) -> list[str]:
        started = self.clock()
        restart = gone.restart_url or GraphResource.parse(resource).first_delta_url(
            self.client.base_url, started
        )
        items: list[dict[str, Any]] = []
        link = None
        for page in self.client.delta_pages(restart, subscription_id=rows_scope.subscription_id):
            items.extend(page.value)
            link = page.delta_link or link
        reason = f"Graph refused the delta link: {gone}"
        keys = self._write(scope, resync_rows(rows_scope, items, started, checkpoint.last_synced, reason))
        if link:
            self._commit(checkpoint, link, started)
        log.error(
            "%s; resynced %s: %d item(s) logged as updates; deletions in that window cannot be read back "
            "(subscription %s)",
            reason,
            resource,
            len(items),
            rows_scope.subscription_id,
        )
        return keys

    def _write(self, scope: str, rows: list[dict[str, Any]]) -> list[str]:
        return self.change_log.append(scope, rows) if rows else []

    def _commit(self, checkpoint: Checkpoint, delta_link: str, at: datetime) -> None:
        try:
            self.checkpoints.replace(checkpoint, delta_link, at)
        except CheckpointConflict:
            log.info(
                "another worker finished a newer delta round of %s; keeping its link (subscription %s)",
                checkpoint.address,
                checkpoint.subscription_id,
            )
