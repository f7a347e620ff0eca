"""The worker: from a queue message to rows in the change log, one list at a time.

For each list named by the message: read the changes since the stored checkpoint, write them to
the change log (idempotent by change token), then move the checkpoint forward under its ETag.
A failure leaves the checkpoint where it was, so the retried message reads the same changes again
and the upserts write nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .change_log import ChangeLog
from .change_tokens import parse_change_token
from .checkpoints import CheckpointStore, advance_checkpoint
from .models import ChangeKind, NotificationMessage, SharePointChange
from .sources.sharepoint import DEFAULT_PAGE_SIZE, ChangeTokenExpired, ListRef, SharePointSource
from .subscriptions import SubscriptionRecord, SubscriptionStore

log = logging.getLogger(__name__)


class InvalidMessage(ValueError):
    """The queue message is not ours: it fails every time and ends in the poison queue."""


class ListSyncFailed(Exception):
    """At least one list could not be read; the message is retried (checkpoints did not move)."""


@dataclass
class ProcessingReport:
    traceparent: str | None = None
    lists_synced: int = 0
    changes_written: int = 0
    unknown_subscriptions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Worker:
    subscriptions: SubscriptionStore
    checkpoints: CheckpointStore
    change_log: ChangeLog
    source: SharePointSource
    page_size: int = DEFAULT_PAGE_SIZE

    def process_message(self, body: str) -> ProcessingReport:
        message = parse_message(body)
        report = ProcessingReport(traceparent=message.traceparent)
        by_list: dict[str, SubscriptionRecord] = {}
        for subscription_id in dict.fromkeys(n.subscription_id for n in message.notifications):
            record = self.subscriptions.get(subscription_id)
            if record is None:
                log.warning("skipping notification for unknown subscription %s", subscription_id)
                report.unknown_subscriptions.append(subscription_id)
                continue
            by_list.setdefault(record.list_id, record)

        failures = []
        for record in by_list.values():
            try:
                report.changes_written += self.sync_list(record)
                report.lists_synced += 1
            except Exception as error:  # one list failing must not stop the others
                log.error(
                    "reading changes failed for subscription %s (list %s): %s",
                    record.id,
                    record.list_id,
                    error,
                )
                failures.append((record.id, error))
        if failures:
            raise ListSyncFailed(
                "; ".join(f"subscription {sid}: {error}" for sid, error in failures)
            ) from failures[0][1]
        return report

    def sync_list(self, record: SubscriptionRecord) -> int:
        """Read and store every change since the checkpoint; returns how many were written."""
        target = ListRef(record.site_url, record.list_id)
        checkpoint = self.checkpoints.read(record.list_id)
        if checkpoint is None:
            self._restart_from_now(record, target, "no checkpoint was stored for this list")
            return 0
        written = 0
        try:
            for page in self.source.fetch_changes(
                target, checkpoint.change_token, subscription_id=record.id, page_size=self.page_size
            ):
                self.change_log.append(record.list_id, [change_entity(record, c) for c in page])
                written += len(page)
                checkpoint, ours = advance_checkpoint(
                    self.checkpoints, checkpoint, page[-1].change_token.string_value
                )
                if not ours:
                    log.info(
                        "checkpoint of list %s was moved ahead by another worker; stopping here "
                        "(subscription %s)",
                        record.list_id,
                        record.id,
                    )
                    break
        except ChangeTokenExpired as error:
            self._restart_from_now(record, target, f"SharePoint refused the change token: {error}")
        log.info("read %d changes for subscription %s (list %s)", written, record.id, record.list_id)
        return written

    def _restart_from_now(self, record: SubscriptionRecord, target: ListRef, why: str) -> None:
        token = self.source.current_change_token(target)
        self.checkpoints.reset(record.list_id, token)
        log.error(
            "%s; changes of list %s before now cannot be read and are skipped (subscription %s)",
            why,
            record.list_id,
            record.id,
        )


def parse_message(body: str) -> NotificationMessage:
    try:
        return NotificationMessage.model_validate_json(body)
    except ValidationError as error:
        raise InvalidMessage(f"not a notification message: {error.error_count()} problem(s)") from None


def change_entity(record: SubscriptionRecord, change: SharePointChange) -> dict[str, Any]:
    token = parse_change_token(change.change_token.string_value)
    entity: dict[str, Any] = {
        "RowKey": token.row_key,
        "subscriptionId": record.id,
        "siteUrl": record.site_url,
        "listId": record.list_id,
        "changeType": ChangeKind.from_sharepoint(change.change_type).value,
        "sharePointChangeType": change.change_type,
        "changeToken": token.value,
        "time": change.time,
    }
    if change.item_id is not None:
        entity["itemId"] = change.item_id
    return entity
