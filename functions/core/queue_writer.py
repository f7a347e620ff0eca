"""Puts messages on the service's queues: notifications (the intakes' and the service's own
requests for a read, for the worker) and delivery signals (for the sinks' drains)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from azure.core.exceptions import ServiceResponseError, ServiceResponseTimeoutError

from .models import NotificationMessage, QueuedNotification
from .queue_put import QueuePutFailed
from .resources import NOTIFICATIONS_QUEUE
from .storage import Storage, StorageUnavailable, is_outage, outages_reported

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient, QueueMessage

log = logging.getLogger(__name__)

MAX_VISIBILITY_DELAY_SECONDS = 7 * 24 * 3600


def _send(queue: QueueClient, message: str) -> QueueMessage:
    """Send once more when the connection broke without an answer (not a timeout): a pooled
    connection the server had just closed as idle. The intake's clients do not retry, and a 503
    for that would only make SharePoint send the notification again later. At worst the message
    is queued twice, which the worker reads once."""

    try:
        return queue.send_message(message)
    except ServiceResponseTimeoutError:
        raise
    except ServiceResponseError as error:
        log.warning("queue put lost its connection (%s); sending once more", type(error).__name__)
        return queue.send_message(message)


class QueueWriter:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def put_all(self, messages: Iterable[str]) -> int:
        """Put every message or none: if one put fails, the ones already put are deleted. Through
        the lean REST put where the account allows it (functions/core/queue_put.py), else the SDK."""
        queue = self._storage.queue(NOTIFICATIONS_QUEUE)
        putter = self._storage.putter(NOTIFICATIONS_QUEUE)
        sent: list[tuple[str, str]] = []
        try:
            for message in messages:
                if putter is not None:
                    receipt = putter.put(message)
                    sent.append((receipt.id, receipt.pop_receipt))
                else:
                    put = _send(queue, message)
                    sent.append((put.id, str(put.pop_receipt)))
        except Exception as error:
            for message_id, pop_receipt in sent:
                try:
                    queue.delete_message(message_id, pop_receipt)
                except Exception as cleanup_error:
                    log.error(
                        "could not take back queue message %s after a failed put: %s",
                        message_id,
                        type(cleanup_error).__name__,
                    )
            if is_outage(error) or (isinstance(error, QueuePutFailed) and error.is_outage):
                raise StorageUnavailable(f"putting {len(sent) + 1} queue message(s): {error}") from error
            raise
        return len(sent)

    def put_later(self, message: str, delay_seconds: int, *, queue: str = NOTIFICATIONS_QUEUE) -> None:
        """Put a message that stays invisible for `delay_seconds` (the queue allows up to 7 days)."""
        delay = max(0, min(delay_seconds, MAX_VISIBILITY_DELAY_SECONDS))
        with outages_reported(f"putting a message on {queue} for {delay}s"):
            self._storage.queue(queue).send_message(message, visibility_timeout=delay)

    def request_sync(self, source: str, subscription_id: str, resource: str) -> None:
        """Ask the worker to read the subscription's changes now, as a notification would."""

        message = NotificationMessage(
            source=source,
            received_at=datetime.now(UTC),
            notifications=[QueuedNotification(subscription_id=subscription_id, resource=resource)],
            requested=True,
        )
        self.put_all([message.model_dump_json(by_alias=True, exclude_none=True)])
