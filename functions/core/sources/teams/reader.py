"""Teams messages into the change log: from the notification itself (decrypted once verified),
and, for a gap or the sweep, read back: a channel's messages delta, or the messages list of a chat
(or of every team's channels, every user's chats) filtered on lastModifiedDateTime."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from ...change_log import ChangeLog, SyncResult
from ...checkpoints import Checkpoint, CheckpointConflict, CheckpointStore
from ...clock import utc_now
from ...models import QueuedNotification
from ...scopes import ReadTarget, RowScope
from ..base import CarriedResult
from ..graph_api import DeltaLinkGone, GraphClient
from .crypto import DecryptionKeys, ResourceDataRefused
from .models import EncryptedContent
from .resources import TeamsResource, filter_time
from .rows import message_row
from .subscriber import SINCE_PREFIX

log = logging.getLogger(__name__)

TEAMS = "teams"
# A filtered read starts this much before the last one ended: a message written while it ran is
# read twice (the same row) rather than never.
READ_OVERLAP = timedelta(minutes=2)
RESYNC_REASON = (
    "Graph refused the stored delta link; the channel's messages changed since the last read were "
    "read again from a new round"
)


@dataclass(frozen=True)
class TeamsReader:
    checkpoints: CheckpointStore
    change_log: ChangeLog
    client: GraphClient
    keys: DecryptionKeys
    keep_preview: bool = True
    clock: Callable[[], datetime] = utc_now

    def write_carried(self, target: ReadTarget, notifications: Sequence[QueuedNotification]) -> CarriedResult:
        """The notifications' own messages as rows: no call to Graph. Each item is decrypted only
        after its signature checks; one that fails is refused and counted, the others kept."""
        rows_scope = RowScope(target.subscription_id, TEAMS, resource=target.address)
        now = self.clock()
        rows: list[dict[str, Any]] = []
        refused: list[str] = []
        for notification in notifications:
            try:
                content = EncryptedContent.model_validate(notification.encrypted_content)
                message = self.keys.decrypt(content)
            except ValidationError:
                refused.append("encryptedContent is malformed")
                continue
            except ResourceDataRefused as error:
                refused.append(str(error))
                continue
            rows.append(self._row(rows_scope, message, notification.change_type, target.title, now))
        for reason in dict.fromkeys(refused):
            log.warning(
                "refused %d rich notification item(s) of subscription %s: %s",
                refused.count(reason),
                target.subscription_id,
                reason,
            )
        if rows:
            self.change_log.append(target.scope, rows)
        return CarriedResult(_result(rows, resynced=False), refused)

    def sync(self, target: ReadTarget, *, refresh: bool = False) -> SyncResult:
        """A catch-up read from the stored cursor; `refresh` changes nothing (a read always moves it)."""
        checkpoint = self.checkpoints.read(target.scope, TEAMS)
        if checkpoint is None:
            log.error("no cursor was stored for %s (subscription %s)", target.address, target.subscription_id)
            return SyncResult(0)
        resource = TeamsResource.parse(target.address)
        rows_scope = RowScope(target.subscription_id, TEAMS, resource=target.address)
        started = self.clock()
        if checkpoint.cursor.startswith(SINCE_PREFIX):
            since = datetime.fromisoformat(checkpoint.cursor[len(SINCE_PREFIX) :].replace("Z", "+00:00"))
            messages = self._filtered(resource, since - READ_OVERLAP, started, target.subscription_id)
            written = self._write(target, rows_scope, messages, started)
            self._commit(checkpoint, SINCE_PREFIX + filter_time(started), started)
            return _result(written, resynced=False)
        try:
            written = []
            for page in self.client.delta_pages(checkpoint.cursor, subscription_id=target.subscription_id):
                written += self._write(target, rows_scope, page.value, started)
                if page.delta_link:
                    self._commit(checkpoint, page.delta_link, started)
        except DeltaLinkGone as gone:
            return self._resync(target, rows_scope, resource, checkpoint, gone, started)
        return _result(written, resynced=False)

    def _resync(
        self,
        target: ReadTarget,
        rows_scope: RowScope,
        resource: TeamsResource,
        checkpoint: Checkpoint,
        gone: DeltaLinkGone,
        started: datetime,
    ) -> SyncResult:
        """A new delta round from the last read's time: what changed since is read again."""
        restart = resource.delta_url(self.client.base_url, checkpoint.last_synced - READ_OVERLAP)
        written: list[dict[str, Any]] = []
        for page in self.client.delta_pages(restart, subscription_id=target.subscription_id):
            written += self._write(target, rows_scope, page.value, started)
            if page.delta_link:
                self._commit(checkpoint, page.delta_link, started)
        log.error(
            "%s (%s; subscription %s, %d message(s))",
            RESYNC_REASON,
            gone,
            target.subscription_id,
            len(written),
        )
        return _result(written, resynced=True)

    def _filtered(
        self, resource: TeamsResource, since: datetime, until: datetime, subscription_id: str
    ) -> Iterator[dict[str, Any]]:
        """Messages changed in (since, until): a chat's, or every team's channels', or every
        user's chats' (the tenant-wide resources have no delta)."""
        base = self.client.base_url
        window = resource.window_filter(since, until)
        if resource.kind == "chat":
            urls: Iterator[str] = iter([resource.chat_messages_url(base, since, until)])
        elif resource.kind == "allChannels":
            urls = (
                f"{base}/v1.0/teams/{quote(team['id'])}/channels/getAllMessages?$filter={window}"
                for team in self._each(f"{base}/v1.0/teams?$select=id", "list teams", subscription_id)
            )
        else:
            urls = (
                f"{base}/v1.0/users/{quote(user['id'])}/chats/getAllMessages?$filter={window}"
                for user in self._each(f"{base}/v1.0/users?$select=id", "list users", subscription_id)
            )
        for url in urls:
            yield from self._each(url, "list messages", subscription_id)

    def _each(self, url: str, operation: str, subscription_id: str) -> Iterator[dict[str, Any]]:
        for page in self.client.list_pages(url, operation, subscription_id=subscription_id):
            yield from (item for item in page if isinstance(item, dict) and item.get("id"))

    def _write(
        self, target: ReadTarget, rows_scope: RowScope, messages: Any, now: datetime
    ) -> list[dict[str, Any]]:
        rows = [self._row(rows_scope, message, None, target.title, now) for message in messages]
        if rows:
            self.change_log.append(target.scope, rows)
        return rows

    def _row(
        self,
        rows_scope: RowScope,
        message: dict[str, Any],
        change_type: str | None,
        where: str | None,
        now: datetime,
    ) -> dict[str, Any]:
        return message_row(
            rows_scope,
            message,
            change_type=change_type,
            where=where,
            keep_preview=self.keep_preview,
            read_at=now,
        )

    def _commit(self, checkpoint: Checkpoint, cursor: str, at: datetime) -> None:
        try:
            self.checkpoints.replace(checkpoint, cursor, at)
        except CheckpointConflict:
            log.info(
                "another worker finished a newer read of %s; keeping its cursor (subscription %s)",
                checkpoint.address,
                checkpoint.subscription_id,
            )


def _result(rows: list[dict[str, Any]], *, resynced: bool) -> SyncResult:
    times = [row["time"] for row in rows]
    return SyncResult(
        len(rows),
        resynced=resynced,
        rows=tuple(row["RowKey"] for row in rows),
        oldest_change=min(times) if times else None,
    )
