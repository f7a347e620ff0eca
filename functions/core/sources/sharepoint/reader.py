"""Reading a SharePoint list's changes: GetChanges from the stored change token, page by page.

Each page is written to the change log (idempotent by change token), then the checkpoint moves
forward under its ETag. A failure leaves the checkpoint where it was, so the retried message reads
the same changes again and the upserts write nothing twice. What SharePoint can no longer give (a
token older than its change log) is rebuilt by a resync and marked as such, never skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ...change_log import ChangeLog, SyncResult
from ...checkpoints import Checkpoint, CheckpointConflict, CheckpointStore
from ...clock import utc_now
from ...scopes import ReadTarget, RowScope
from ...tenancy import inner_scope
from .change_tokens import parse_change_token
from .client import DEFAULT_PAGE_SIZE, ChangeTokenExpired, ListRef, SharePointClient
from .field_changes import FieldTracker
from .rows import change_row, resync_entry, resynced_item_row

log = logging.getLogger(__name__)

SHAREPOINT = "sharepoint"
# A checkpoint whose token is older than this is refreshed to the list's current token when a
# sync finds nothing newer, so no quiet list drifts towards SharePoint's 60-day change log edge.
TOKEN_REFRESH_AGE = timedelta(days=1)


@dataclass(frozen=True)
class ListReader:
    checkpoints: CheckpointStore
    change_log: ChangeLog
    client: SharePointClient
    fields: FieldTracker
    page_size: int = DEFAULT_PAGE_SIZE
    clock: Callable[[], datetime] = utc_now

    def sync(self, target: ReadTarget, *, refresh: bool = False) -> SyncResult:
        """Read and store every change since the checkpoint.

        With `refresh` (the sweep), or when the checkpoint's token is getting old, the list's
        current token is read first, so a sync that finds nothing still moves the checkpoint to
        now: every change up to that token was in the reply.
        """
        listed = ListRef(target.address, inner_scope(target.scope))
        subscription_id = target.subscription_id
        checkpoint = self.checkpoints.read(target.scope, SHAREPOINT)
        if checkpoint is None:
            self._start_from_now(listed, subscription_id)
            log.error(
                "no checkpoint was stored for list %s; reading from now on (subscription %s)",
                target.scope,
                subscription_id,
            )
            return SyncResult(written=0)
        started = self.clock()
        token_age = started - parse_change_token(checkpoint.cursor).time
        current = (
            self.client.current_change_token(listed) if refresh or token_age > TOKEN_REFRESH_AGE else None
        )
        scope = RowScope(subscription_id, SHAREPOINT, site_url=listed.site_url, list_id=listed.list_id)
        written = 0
        rows: list[str] = []
        oldest: datetime | None = None
        try:
            for page in self.client.fetch_changes(
                listed, checkpoint.cursor, subscription_id=subscription_id, page_size=self.page_size
            ):
                page_rows = [change_row(scope, change) for change in page]
                if checkpoint.fields:
                    self.fields.annotate(listed, checkpoint.fields, page, page_rows, subscription_id)
                rows += self.change_log.append(target.scope, page_rows)
                written += len(page)
                oldest = min(page[0].time, oldest or page[0].time)
                checkpoint, ours = commit_sync(
                    self.checkpoints, checkpoint, page[-1].change_token.string_value, self.clock()
                )
                if not ours:
                    log.info(
                        "checkpoint of list %s was moved ahead by another worker; stopping here "
                        "(subscription %s)",
                        target.scope,
                        subscription_id,
                    )
                    return SyncResult(written, rows=tuple(rows), oldest_change=oldest)
        except ChangeTokenExpired as error:
            rows += self._resync(listed, scope, checkpoint, f"SharePoint refused the change token: {error}")
            return SyncResult(written, resynced=True, rows=tuple(rows))
        if written == 0 or current is not None:
            # Nothing was committed page by page, or the token read first is further on: record
            # the sync (and move the token) now. Otherwise the last page's commit recorded it.
            commit_sync(self.checkpoints, checkpoint, current or checkpoint.cursor, started)
        log.info("read %d changes for subscription %s (list %s)", written, subscription_id, target.scope)
        return SyncResult(written, rows=tuple(rows), oldest_change=oldest)

    def _resync(self, listed: ListRef, scope: RowScope, checkpoint: Checkpoint, why: str) -> list[str]:
        """The changes since the checkpoint are gone from SharePoint's change log: log a resync
        entry, then every item modified since the checkpoint's time, and start over from now.

        The current token is read first, so nothing made while the items are read is missed
        (such an item may be logged twice: once here, once as the change it is)."""
        restart = parse_change_token(self.client.current_change_token(listed))
        since = parse_change_token(checkpoint.cursor).time
        rows = [resync_entry(scope, restart, since, why)]
        for page in self.client.items_modified_since(listed, since, subscription_id=scope.subscription_id):
            rows.extend(resynced_item_row(scope, restart, item) for item in page)
        keys = self.change_log.append(listed.list_id, rows)
        commit_sync(self.checkpoints, checkpoint, restart.value, self.clock())
        log.error(
            "%s; resynced list %s from %s: %d item(s) modified since were logged as updates; deletions "
            "in that window cannot be read back (subscription %s)",
            why,
            listed.list_id,
            since.isoformat(),
            len(rows) - 1,
            scope.subscription_id,
        )
        return keys

    def _start_from_now(self, listed: ListRef, subscription_id: str) -> None:
        self.checkpoints.start(
            listed.list_id,
            address=listed.site_url,
            subscription_id=subscription_id,
            cursor=self.client.current_change_token(listed),
            at=self.clock(),
            source=SHAREPOINT,
        )


class CheckpointReaderWriter(Protocol):
    def read(self, scope: str, source: str) -> Checkpoint | None: ...

    def replace(self, checkpoint: Checkpoint, cursor: str, at: datetime) -> Checkpoint: ...


def commit_sync(
    checkpoints: CheckpointReaderWriter, checkpoint: Checkpoint, change_token: str, at: datetime
) -> tuple[Checkpoint, bool]:
    """Record that the list has been read up to `change_token` at `at`; the token never moves
    backwards.

    Returns the checkpoint as stored now, and whether this call moved its token (False when
    another worker had already moved it at least as far).
    """
    target = parse_change_token(change_token)
    while True:
        moved = target > parse_change_token(checkpoint.cursor)
        try:
            token = change_token if moved else checkpoint.cursor
            return checkpoints.replace(checkpoint, token, max(at, checkpoint.last_synced)), moved
        except CheckpointConflict:
            current = checkpoints.read(checkpoint.scope, SHAREPOINT)
            if current is None:
                raise
            checkpoint = current
