"""What the intake's unit tests look subscriptions up in and put messages on: a record or two and
a list of messages (the rest of the fast tier uses storage.py, m365.py and world.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from functions.core.models import SubscriptionStatus
from functions.core.storage import StorageUnavailable
from functions.core.subscriptions import SubscriptionRecord, hash_client_state

SUB_1 = "91779246-afe9-4525-b122-6c199ae89211"
SUB_2 = "0b5ea4c5-3c3b-4a0e-9a57-6f0c3c7b1d2e"


def record(
    subscription_id: str = SUB_1, client_state: str = "secret-state", list_id: str = "list-1"
) -> SubscriptionRecord:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return SubscriptionRecord(
        id=subscription_id,
        source="sharepoint",
        scope=list_id,
        address="https://contoso.sharepoint.com/sites/x",
        resource=list_id,
        notification_url="https://app/api/notifications/sharepoint",
        expiration=now,
        client_state_hash=hash_client_state(client_state),
        status=SubscriptionStatus.ACTIVE,
        created=now,
    )


class RecordLookup:
    def __init__(self, *records: SubscriptionRecord) -> None:
        self.records = {r.id: r for r in records}
        self.reads = 0

    def get(self, subscription_id: str, source: str | None = None) -> SubscriptionRecord | None:
        self.reads += 1
        return self.records.get(subscription_id)


class MessageList:
    def __init__(self, *, unavailable: bool = False) -> None:
        self.messages: list[str] = []
        self.unavailable = unavailable

    def put_all(self, messages) -> int:
        batch = list(messages)
        if self.unavailable:
            raise StorageUnavailable("queue is down")
        self.messages.extend(batch)
        return len(batch)
