"""The `subscriptions` table: one entity per subscription, keyed by its id."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from ..models import SubscriptionStatus
from ..resources import SUBSCRIPTIONS_TABLE
from ..storage import Storage, TableRepository, is_valid_key, outages_reported
from ..tenancy import tenant_scope_range
from .record import HealthSummary, SubscriptionRecord

# Claims live beside the subscriptions, one entity per scope: inserting one is what makes
# "one subscription per list (or Graph resource)" atomic across instances.
CLAIMS_PARTITION = "list"
# A claim that never got its subscription (the creating instance died) may be taken over after this.
STALE_CLAIM_AFTER = timedelta(minutes=5)
# Writers that lose the ETag race read the record again and retry this many times.
ETAG_ATTEMPTS = 5
HEALTH_COLUMNS = ("healthGapAt", "healthHeardAt", "healthFailingSince")


class ListClaimed(Exception):
    """Another subscription holds the list (or is being created for it)."""

    def __init__(self, list_id: str, subscription_id: str | None) -> None:
        self.list_id = list_id
        self.subscription_id = subscription_id
        holder = f"subscription {subscription_id}" if subscription_id else "a subscription being created"
        super().__init__(f"list {list_id} already has {holder}")


class SubscriptionStore(TableRepository):
    """One partition per source (a notification's intake knows its source and reads one entity),
    in the order `sources` names them (the order listing pages walk)."""

    table_name = SUBSCRIPTIONS_TABLE

    def __init__(self, storage: Storage, sources: Sequence[str]) -> None:
        super().__init__(storage)
        self.sources = tuple(sources)

    def claim_scope(self, scope: str, at: datetime) -> None:
        """Insert the scope's claim; raises ListClaimed if it exists, unless it is a stale one."""

        claim = {"PartitionKey": CLAIMS_PARTITION, "RowKey": scope, "claimedAt": at}
        with outages_reported(f"claiming {scope}"):
            try:
                self._table.create_entity(claim)
                return
            except ResourceExistsError:
                existing = self._table.get_entity(CLAIMS_PARTITION, scope)
            holder = existing.get("subscriptionId")
            if holder or existing["claimedAt"] > at - STALE_CLAIM_AFTER:
                raise ListClaimed(scope, holder)
            try:
                self._replace_if_unchanged(claim, str(existing.metadata["etag"]))
            except ResourceModifiedError:
                raise ListClaimed(scope, None) from None

    def bind_claim(self, scope: str, subscription_id: str) -> None:

        with outages_reported(f"recording subscription {subscription_id} on the claim of {scope}"):
            self._table.update_entity(
                {"PartitionKey": CLAIMS_PARTITION, "RowKey": scope, "subscriptionId": subscription_id},
                mode=UpdateMode.MERGE,
            )

    def release_claim(self, scope: str) -> None:
        with outages_reported(f"releasing the claim of {scope}"):
            self._table.delete_entity(CLAIMS_PARTITION, scope)

    def get(self, subscription_id: str, source: str | None = None) -> SubscriptionRecord | None:
        """The record of `subscription_id` from one source's partition, or any (two reads)."""

        if not is_valid_key(subscription_id):
            return None
        for partition in (source,) if source else self.sources:
            with outages_reported(f"reading subscription {subscription_id}"):
                try:
                    return from_entity(self._table.get_entity(partition, subscription_id))
                except ResourceNotFoundError:
                    continue
        return None

    def save(self, record: SubscriptionRecord) -> None:
        """Store a new record (a created or recreated subscription: a new id)."""
        with outages_reported(f"saving subscription {record.id}"):
            self._table.upsert_entity(to_entity(record), mode=UpdateMode.REPLACE)

    def save_renewal(self, record: SubscriptionRecord) -> SubscriptionRecord:
        """Write a renewed expiry under the record's ETag, leaving the columns others write (the
        health summary) alone; a writer that came first makes it read again and retry."""
        columns = {"expirationDateTime": record.expiration, "lastRenewedDateTime": record.last_renewed}
        return self._merge_under_etag(record, lambda current: columns, "renewing")

    def mark_deleting(self, record: SubscriptionRecord) -> SubscriptionRecord:
        columns = {"status": SubscriptionStatus.DELETING.value}
        return self._merge_under_etag(record, lambda current: columns, "marking for deletion")

    def save_ignored(self, record: SubscriptionRecord, names: tuple[str, ...]) -> SubscriptionRecord:
        """Change who the subscription's sinks ignore, under the record's ETag."""
        columns = {"ignoreChangesBy": json.dumps(list(names))}
        return self._merge_under_etag(record, lambda current: columns, "updating")

    def holder_of(self, scope: str) -> SubscriptionRecord | None:
        """The subscription that holds the scope now (its claim names it; a recreate moves it)."""
        with outages_reported(f"reading the claim of {scope}"):
            try:
                claim = self._table.get_entity(CLAIMS_PARTITION, scope)
            except ResourceNotFoundError:
                return None
        holder = claim.get("subscriptionId")
        return self.get(holder) if holder else None

    def update_health(
        self, record: SubscriptionRecord, change: Callable[[HealthSummary], HealthSummary]
    ) -> SubscriptionRecord:
        """Apply `change` to the stored health summary under the record's ETag; no write at all
        when it changes nothing."""

        def columns(current: SubscriptionRecord) -> dict[str, Any] | None:
            summary = change(current.health)
            return None if summary == current.health else _health_columns(summary)

        return self._merge_under_etag(record, columns, "keeping the health of")

    def _merge_under_etag(
        self,
        record: SubscriptionRecord,
        columns_for: Callable[[SubscriptionRecord], dict[str, Any] | None],
        doing: str,
    ) -> SubscriptionRecord:
        current: SubscriptionRecord | None = record
        for _ in range(ETAG_ATTEMPTS):
            if current is None or current.etag is None:
                current = self.get(record.id, record.source)
                if current is None:
                    raise ResourceNotFoundError(f"subscription {record.id} is gone")
            columns = columns_for(current)
            if columns is None:
                return current
            entity = {"PartitionKey": current.source, "RowKey": current.id, **columns}
            with outages_reported(f"{doing} subscription {record.id}"):
                try:
                    metadata = self._table.update_entity(
                        entity,
                        mode=UpdateMode.MERGE,
                        etag=current.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                except ResourceModifiedError:
                    current = None
                    continue
                except ResourceNotFoundError:
                    raise ResourceNotFoundError(f"subscription {record.id} is gone") from None
            return from_entity({**to_entity(current), **entity}, etag=str(metadata["etag"]))
        raise ResourceModifiedError(f"subscription {record.id} kept changing while {doing} it")

    def delete(self, record: SubscriptionRecord) -> None:
        with outages_reported(f"deleting subscription {record.id}"):
            self._table.delete_entity(record.source, record.id)

    def page(
        self, *, after: tuple[str, str] | None, top: int, guest: str | None = None
    ) -> tuple[list[SubscriptionRecord], bool]:
        """Up to `top` subscriptions in key order (source, then id) after the key `after`, and
        whether more follow. Each query stops at `top + 1` entities, so a page costs the same
        however large the table grows. With `guest`, only that guest tenant's: its scopes share a
        prefix, so the table service filters them."""
        records: list[SubscriptionRecord] = []
        start_source, start_id = after or (self.sources[0], "")
        query = "PartitionKey eq @pk and RowKey gt @after"
        bounds: dict[str, str] = {}
        if guest is not None:
            query += " and listId ge @low and listId lt @high"
            bounds = dict(zip(("low", "high"), tenant_scope_range(guest), strict=True))
        for source in self.sources[self.sources.index(start_source) :]:
            after_id = start_id if source == start_source else ""
            with outages_reported("listing subscriptions"):
                entities = self._table.query_entities(
                    query,
                    parameters={"pk": source, "after": after_id, **bounds},
                    results_per_page=top + 1 - len(records),
                )
                for entity in entities:
                    if len(records) == top:
                        return records, True
                    records.append(from_entity(entity))
        return records, False

    def expiring_before(self, source: str, moment: datetime) -> list[SubscriptionRecord]:
        """Only the subscriptions that are due: the filter runs in the table service."""
        return self._query(
            "reading subscriptions due for renewal",
            "PartitionKey eq @pk and expirationDateTime le @due",
            {"pk": source, "due": moment},
        )

    def _query(self, operation: str, query: str, parameters: dict[str, Any]) -> list[SubscriptionRecord]:
        with outages_reported(operation):
            return [
                from_entity(entity) for entity in self._table.query_entities(query, parameters=parameters)
            ]


def to_entity(record: SubscriptionRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": record.source,
        "RowKey": record.id,
        "source": record.source,
        "siteUrl": record.address,
        "listId": record.scope,
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
    if record.change_type:
        entity["changeType"] = record.change_type
    if record.fields:
        entity["fields"] = json.dumps(list(record.fields))
    if record.title:
        entity["title"] = record.title
    if record.ignore_changes_by:
        entity["ignoreChangesBy"] = json.dumps(list(record.ignore_changes_by))
    return entity | {column: value for column, value in _health_columns(record.health).items() if value}


def _health_columns(summary: HealthSummary) -> dict[str, Any]:
    """A time, or "" for none: the SDK leaves a None out of the request, so a MERGE could never
    clear the column."""
    values = (summary.gap_at, summary.heard_at, summary.failing_since)
    return {column: value or "" for column, value in zip(HEALTH_COLUMNS, values, strict=True)}


def from_entity(entity: dict[str, Any], etag: str | None = None) -> SubscriptionRecord:
    metadata = getattr(entity, "metadata", None) or {}
    return SubscriptionRecord(
        id=entity["RowKey"],
        source=entity["PartitionKey"],
        scope=entity["listId"],
        # Graph records written before the field was shared kept the resource path only.
        address=entity["siteUrl"] or entity["resource"],
        resource=entity["resource"],
        notification_url=entity["notificationUrl"],
        expiration=entity["expirationDateTime"],
        client_state_hash=entity["clientStateHash"],
        status=SubscriptionStatus(entity["status"]),
        created=entity["createdDateTime"],
        last_renewed=entity.get("lastRenewedDateTime"),
        previous_id=entity.get("previousId"),
        change_type=entity.get("changeType"),
        fields=tuple(json.loads(entity["fields"])) if entity.get("fields") else (),
        title=entity.get("title"),
        ignore_changes_by=tuple(json.loads(entity.get("ignoreChangesBy") or "[]")),
        health=HealthSummary(*(entity.get(column) or None for column in HEALTH_COLUMNS)),
        etag=etag or metadata.get("etag"),
    )
