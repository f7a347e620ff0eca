"""The `subscriptions` table: one entity per subscription, keyed by its id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..models import SubscriptionStatus
from ..storage import (
    SHAREPOINT_PARTITION,
    SUBSCRIPTIONS_TABLE,
    TableRepository,
    is_valid_key,
    outages_reported,
)
from .record import SubscriptionRecord


class SubscriptionStore(TableRepository):
    table_name = SUBSCRIPTIONS_TABLE

    def get(self, subscription_id: str) -> SubscriptionRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

        if not is_valid_key(subscription_id):
            return None
        with outages_reported(f"reading subscription {subscription_id}"):
            try:
                entity = self._table.get_entity(SHAREPOINT_PARTITION, subscription_id)
            except ResourceNotFoundError:
                return None
        return from_entity(entity)

    def save(self, record: SubscriptionRecord) -> None:
        from azure.data.tables import UpdateMode

        with outages_reported(f"saving subscription {record.id}"):
            self._table.upsert_entity(to_entity(record), mode=UpdateMode.REPLACE)

    def delete(self, subscription_id: str) -> None:
        with outages_reported(f"deleting subscription {subscription_id}"):
            self._table.delete_entity(SHAREPOINT_PARTITION, subscription_id)

    def list_all(self) -> list[SubscriptionRecord]:
        return self._query("listing subscriptions", "PartitionKey eq @pk", {})

    def expiring_before(self, moment: datetime) -> list[SubscriptionRecord]:
        """Only the subscriptions that are due: the filter runs in the table service."""
        return self._query(
            "reading subscriptions due for renewal",
            "PartitionKey eq @pk and expirationDateTime le @due",
            {"due": moment},
        )

    def find_by_list(self, list_id: str) -> list[SubscriptionRecord]:
        return self._query(
            f"reading subscriptions of list {list_id}",
            "PartitionKey eq @pk and listId eq @list",
            {"list": list_id},
        )

    def _query(self, operation: str, query: str, parameters: dict[str, Any]) -> list[SubscriptionRecord]:
        with outages_reported(operation):
            entities = self._table.query_entities(
                query, parameters={"pk": SHAREPOINT_PARTITION, **parameters}
            )
            return [from_entity(entity) for entity in entities]


def to_entity(record: SubscriptionRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": SHAREPOINT_PARTITION,
        "RowKey": record.id,
        "siteUrl": record.site_url,
        "listId": record.list_id,
        "resource": record.resource,
        "notificationUrl": record.notification_url,
        "expirationDateTime": record.expiration,
        "clientStateHash": record.client_state_hash,
        "status": record.status.value,
        "createdDateTime": record.created,
    }
    if record.last_renewed:
        entity["lastRenewedDateTime"] = record.last_renewed
    if record.previous_id:
        entity["previousId"] = record.previous_id
    return entity


def from_entity(entity: dict[str, Any]) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=entity["RowKey"],
        site_url=entity["siteUrl"],
        list_id=entity["listId"],
        resource=entity["resource"],
        notification_url=entity["notificationUrl"],
        expiration=entity["expirationDateTime"],
        client_state_hash=entity["clientStateHash"],
        status=SubscriptionStatus(entity["status"]),
        created=entity["createdDateTime"],
        last_renewed=entity.get("lastRenewedDateTime"),
        previous_id=entity.get("previousId"),
    )
