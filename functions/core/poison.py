"""The poison queue: messages the worker gave up on, with why, and a way to send them back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from .failures import Failure, FailureLog
from .models import NotificationMessage
from .resources import NOTIFICATIONS_POISON_QUEUE, NOTIFICATIONS_QUEUE
from .storage import Storage, outages_reported

log = logging.getLogger(__name__)

# The queue service hands out at most 32 messages per call.
QUEUE_PAGE = 32
MAX_LISTED = 32
MAX_REPLAYED_PER_CALL = 1000


@dataclass(frozen=True)
class PoisonedMessage:
    queue_message_id: str
    message_id: str | None
    subscriptions: list[str]
    received_at: datetime | None
    poisoned_at: datetime | None
    failure: Failure | None


@dataclass(frozen=True)
class PoisonListing:
    messages: list[PoisonedMessage]
    approximate_count: int


class PoisonQueue:
    def __init__(self, storage: Storage, failures: FailureLog) -> None:
        self._storage = storage
        self._failures = failures

    def put(self, body: str) -> None:
        """Poison a message at once (a failure no retry can mend)."""
        with outages_reported("putting a message on the poison queue"):
            self._storage.queue(NOTIFICATIONS_POISON_QUEUE).send_message(body)

    def list(self) -> PoisonListing:
        """The oldest poisoned messages (peeked, so nothing moves) and how many there are."""
        queue = self._storage.queue(NOTIFICATIONS_POISON_QUEUE)
        with outages_reported("reading the poison queue"):
            peeked = list(queue.peek_messages(max_messages=MAX_LISTED))
            count = queue.get_queue_properties().approximate_message_count or 0
        parsed = [(message, _parse(message.content)) for message in peeked]
        failures = self._failures.get_many(body.id for _, body in parsed if body is not None)
        return PoisonListing(
            messages=[
                PoisonedMessage(
                    queue_message_id=message.id,
                    message_id=body.id if body else None,
                    subscriptions=list(dict.fromkeys(n.subscription_id for n in body.notifications))
                    if body
                    else [],
                    received_at=body.received_at if body else None,
                    poisoned_at=message.inserted_on,
                    failure=failures.get(body.id) if body else None,
                )
                for message, body in parsed
            ],
            approximate_count=max(count, len(peeked)),
        )

    def replay(self, limit: int = MAX_REPLAYED_PER_CALL) -> int:
        """Move poisoned messages back to the notifications queue; returns how many moved.

        Each is put back before it is deleted here, so a failure in between duplicates a message
        (harmless: the change log is idempotent) but never loses one.
        """
        poison = self._storage.queue(NOTIFICATIONS_POISON_QUEUE)
        notifications = self._storage.queue(NOTIFICATIONS_QUEUE)
        moved = 0
        with outages_reported("replaying the poison queue"):
            while moved < limit:
                batch = list(
                    poison.receive_messages(
                        max_messages=min(QUEUE_PAGE, limit - moved), visibility_timeout=60
                    )
                )
                if not batch:
                    break
                for message in batch:
                    notifications.send_message(message.content)
                    poison.delete_message(message)
                    moved += 1
        log.info("replayed %d poisoned message(s) to %s", moved, NOTIFICATIONS_QUEUE)
        return moved


def _parse(body: str) -> NotificationMessage | None:
    try:
        return NotificationMessage.model_validate_json(body)
    except ValidationError:
        return None
