"""The `failures` table: why each queue message failed, kept by our message id.

The host moves a message that keeps failing to `notifications-poison` without saying why; this
log is what the poison API shows beside each one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from .resources import FAILURES_TABLE
from .storage import TableRepository, is_valid_key, outages_reported

PARTITION = "notification"
MAX_REASON_LENGTH = 1000


@dataclass(frozen=True)
class Failure:
    message_id: str
    attempts: int
    first_reason: str
    first_failed_at: datetime
    last_reason: str
    last_failed_at: datetime


class FailureLog(TableRepository):
    table_name = FAILURES_TABLE

    def record(self, message_id: str, reason: str, at: datetime) -> Failure:
        """Count one more failure of the message; the first reason is kept as it was."""

        reason = reason[:MAX_REASON_LENGTH]
        previous = self.get(message_id)
        failure = Failure(
            message_id=message_id,
            attempts=(previous.attempts if previous else 0) + 1,
            first_reason=previous.first_reason if previous else reason,
            first_failed_at=previous.first_failed_at if previous else at,
            last_reason=reason,
            last_failed_at=at,
        )
        with outages_reported(f"recording a failure of message {message_id}"):
            self._table.upsert_entity(_entity(failure), mode=UpdateMode.REPLACE)
        return failure

    def get(self, message_id: str) -> Failure | None:

        if not is_valid_key(message_id):
            return None
        with outages_reported(f"reading the failures of message {message_id}"):
            try:
                return _from_entity(self._table.get_entity(PARTITION, message_id))
            except ResourceNotFoundError:
                return None

    def get_many(self, message_ids: Iterable[str]) -> dict[str, Failure]:
        found = {}
        for message_id in dict.fromkeys(message_ids):
            failure = self.get(message_id)
            if failure is not None:
                found[message_id] = failure
        return found


def _entity(failure: Failure) -> dict[str, Any]:
    return {
        "PartitionKey": PARTITION,
        "RowKey": failure.message_id,
        "attempts": failure.attempts,
        "firstReason": failure.first_reason,
        "firstFailedAt": failure.first_failed_at,
        "lastReason": failure.last_reason,
        "lastFailedAt": failure.last_failed_at,
    }


def _from_entity(entity: Any) -> Failure:
    return Failure(
        message_id=entity["RowKey"],
        attempts=int(entity["attempts"]),
        first_reason=entity["firstReason"],
        first_failed_at=entity["firstFailedAt"],
        last_reason=entity["lastReason"],
        last_failed_at=entity["lastFailedAt"],
    )
