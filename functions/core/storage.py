"""Tables and the queue: Azurite locally (connection string), managed identity in Azure.

The Azure SDKs are imported on first use, so the validation echo never pays for them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .models import SubscriptionStatus, SubscriptionView, format_utc
from .settings import StorageSettings

log = logging.getLogger(__name__)

NOTIFICATIONS_QUEUE = "notifications"
NOTIFICATIONS_POISON_QUEUE = "notifications-poison"
SUBSCRIPTIONS_TABLE = "subscriptions"
CHECKPOINTS_TABLE = "checkpoints"
CHANGES_TABLE = "changes"
QUEUES = (NOTIFICATIONS_QUEUE, NOTIFICATIONS_POISON_QUEUE)
TABLES = (SUBSCRIPTIONS_TABLE, CHECKPOINTS_TABLE, CHANGES_TABLE)

SHAREPOINT_PARTITION = "sharepoint"
# Entity-group transactions take at most 100 operations, all in one partition.
MAX_TRANSACTION_SIZE = 100
# The SDKs' own retries are kept short: the intake must answer SharePoint within seconds.
# (The queue SDK's default policy backs off from 15 s, so it gets a linear one of its own.)
_TIMEOUTS = {"connection_timeout": 3, "read_timeout": 10}
_TABLE_RETRIES = {"retry_total": 2, "retry_backoff_factor": 0.2}


class StorageUnavailable(Exception):
    """Storage could not be reached or refused the call; the caller should answer 503."""


def storage_errors() -> tuple[type[BaseException], ...]:
    """The SDK errors that mean 'storage is unavailable' (imported lazily like the SDK)."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    return (ServiceRequestError, ServiceResponseError, HttpResponseError)


class Storage:
    """Lazily built, thread-safe clients for the account named by the settings."""

    def __init__(self, settings: StorageSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._tables: dict[str, Any] = {}
        self._queues: dict[str, Any] = {}
        self._credential = None

    def table(self, name: str):
        with self._lock:
            if name not in self._tables:
                self._tables[name] = self._new_table_client(name)
            return self._tables[name]

    def queue(self, name: str):
        with self._lock:
            if name not in self._queues:
                self._queues[name] = self._new_queue_client(name)
            return self._queues[name]

    def ensure_resources(self) -> None:
        """Create the queues and tables the code uses; in Azure, infra/ creates them instead."""
        from azure.core.exceptions import ResourceExistsError

        for name in TABLES:
            try:
                self.table(name).create_table()
            except ResourceExistsError:
                pass
        for name in QUEUES:
            try:
                self.queue(name).create_queue()
            except ResourceExistsError:
                pass

    def _new_table_client(self, name: str):
        from azure.data.tables import TableClient

        if self._settings.connection_string:
            return TableClient.from_connection_string(
                _expand_development_storage(self._settings.connection_string),
                table_name=name, **_TIMEOUTS, **_TABLE_RETRIES,
            )
        return TableClient(
            endpoint=self._settings.table_service_uri, table_name=name,
            credential=self._identity(), **_TIMEOUTS, **_TABLE_RETRIES,
        )

    def _new_queue_client(self, name: str):
        from azure.storage.queue import (
            LinearRetry,
            QueueClient,
            TextBase64DecodePolicy,
            TextBase64EncodePolicy,
        )

        policies = {
            "message_encode_policy": TextBase64EncodePolicy(),
            "message_decode_policy": TextBase64DecodePolicy(),
            "retry_policy": LinearRetry(backoff=0.5, random_jitter_range=0.2, retry_total=2),
            **_TIMEOUTS,
        }
        if self._settings.connection_string:
            return QueueClient.from_connection_string(
                _expand_development_storage(self._settings.connection_string),
                queue_name=name, **policies,
            )
        return QueueClient(
            account_url=self._settings.queue_service_uri, queue_name=name,
            credential=self._identity(), **policies,
        )

    def _identity(self):
        if self._credential is None:
            from azure.identity import ManagedIdentityCredential

            self._credential = ManagedIdentityCredential(
                client_id=self._settings.managed_identity_client_id
            )
        return self._credential


# Azurite's published, well-known development account key (not a secret).
_DEVELOPMENT_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def development_connection_string(
    host: str = "127.0.0.1", *, blob_port: int = 10000, queue_port: int = 10001, table_port: int = 10002
) -> str:
    """The connection string of Azurite's development account on the given ports."""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={_DEVELOPMENT_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob_port}/devstoreaccount1;"
        f"QueueEndpoint=http://{host}:{queue_port}/devstoreaccount1;"
        f"TableEndpoint=http://{host}:{table_port}/devstoreaccount1;"
    )


def _expand_development_storage(connection_string: str) -> str:
    """The SDKs for tables do not understand `UseDevelopmentStorage=true`; spell it out."""
    if connection_string.replace(" ", "").lower().rstrip(";") == "usedevelopmentstorage=true":
        return development_connection_string()
    return connection_string


# --- subscriptions -----------------------------------------------------------------------------


def hash_client_state(client_state: str) -> str:
    """We keep only a hash of each clientState: the table never holds the shared secret."""
    return hashlib.sha256(client_state.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SubscriptionRecord:
    id: str
    site_url: str
    list_id: str
    resource: str
    notification_url: str
    expiration: datetime
    client_state_hash: str
    status: SubscriptionStatus
    created: datetime
    last_renewed: datetime | None = None
    previous_id: str | None = None

    def client_state_matches(self, client_state: str | None) -> bool:
        if client_state is None:
            return False
        return hmac.compare_digest(hash_client_state(client_state), self.client_state_hash)

    def renewed(self, expiration: datetime, at: datetime) -> SubscriptionRecord:
        return replace(self, expiration=expiration, last_renewed=at)

    def to_view(self) -> SubscriptionView:
        return SubscriptionView(
            id=self.id,
            site_url=self.site_url,
            list_id=self.list_id,
            resource=self.resource,
            notification_url=self.notification_url,
            expiration_date_time=format_utc(self.expiration),
            status=self.status,
            created_date_time=format_utc(self.created),
            last_renewed_date_time=format_utc(self.last_renewed) if self.last_renewed else None,
            previous_id=self.previous_id,
        )

    def to_entity(self) -> dict[str, Any]:
        entity = {
            "PartitionKey": SHAREPOINT_PARTITION,
            "RowKey": self.id,
            "siteUrl": self.site_url,
            "listId": self.list_id,
            "resource": self.resource,
            "notificationUrl": self.notification_url,
            "expirationDateTime": self.expiration,
            "clientStateHash": self.client_state_hash,
            "status": self.status.value,
            "createdDateTime": self.created,
        }
        if self.last_renewed:
            entity["lastRenewedDateTime"] = self.last_renewed
        if self.previous_id:
            entity["previousId"] = self.previous_id
        return entity

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> SubscriptionRecord:
        return cls(
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


class SubscriptionStore:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @property
    def _table(self):
        return self._storage.table(SUBSCRIPTIONS_TABLE)

    def get(self, subscription_id: str) -> SubscriptionRecord | None:
        from azure.core.exceptions import ResourceNotFoundError

        if not _is_valid_key(subscription_id):
            return None
        try:
            return SubscriptionRecord.from_entity(
                self._table.get_entity(SHAREPOINT_PARTITION, subscription_id)
            )
        except ResourceNotFoundError:
            return None

    def save(self, record: SubscriptionRecord) -> None:
        from azure.data.tables import UpdateMode

        self._table.upsert_entity(record.to_entity(), mode=UpdateMode.REPLACE)

    def delete(self, subscription_id: str) -> None:
        self._table.delete_entity(SHAREPOINT_PARTITION, subscription_id)

    def list_all(self) -> list[SubscriptionRecord]:
        entities = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": SHAREPOINT_PARTITION}
        )
        return [SubscriptionRecord.from_entity(e) for e in entities]

    def expiring_before(self, moment: datetime) -> list[SubscriptionRecord]:
        """Only the subscriptions that are due: the filter runs in the table service."""
        entities = self._table.query_entities(
            "PartitionKey eq @pk and expirationDateTime le @due",
            parameters={"pk": SHAREPOINT_PARTITION, "due": moment},
        )
        return [SubscriptionRecord.from_entity(e) for e in entities]

    def find_by_list(self, list_id: str) -> list[SubscriptionRecord]:
        entities = self._table.query_entities(
            "PartitionKey eq @pk and listId eq @list",
            parameters={"pk": SHAREPOINT_PARTITION, "list": list_id},
        )
        return [SubscriptionRecord.from_entity(e) for e in entities]


# --- checkpoints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    list_id: str
    change_token: str
    etag: str


class CheckpointConflict(Exception):
    """Someone else moved the checkpoint since we read it (ETag mismatch)."""


class CheckpointStore:
    """The last change token read per list: one entity per list, guarded by its ETag."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @property
    def _table(self):
        return self._storage.table(CHECKPOINTS_TABLE)

    def read(self, list_id: str) -> Checkpoint | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = self._table.get_entity(SHAREPOINT_PARTITION, list_id)
        except ResourceNotFoundError:
            return None
        return Checkpoint(list_id, entity["changeToken"], entity.metadata["etag"])

    def reset(self, list_id: str, change_token: str) -> None:
        """Set unconditionally: only when a subscription starts, or the token expired."""
        from azure.data.tables import UpdateMode

        self._table.upsert_entity(_checkpoint_entity(list_id, change_token), mode=UpdateMode.REPLACE)

    def advance(self, checkpoint: Checkpoint, change_token: str) -> Checkpoint:
        """Replace only if nobody moved it since `checkpoint` was read; raises CheckpointConflict."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError
        from azure.data.tables import UpdateMode

        try:
            metadata = self._table.update_entity(
                _checkpoint_entity(checkpoint.list_id, change_token),
                mode=UpdateMode.REPLACE,
                etag=checkpoint.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError as error:
            raise CheckpointConflict(checkpoint.list_id) from error
        return Checkpoint(checkpoint.list_id, change_token, metadata["etag"])

    def delete(self, list_id: str) -> None:
        self._table.delete_entity(SHAREPOINT_PARTITION, list_id)


def _checkpoint_entity(list_id: str, change_token: str) -> dict[str, Any]:
    return {"PartitionKey": SHAREPOINT_PARTITION, "RowKey": list_id, "changeToken": change_token}


# --- change log --------------------------------------------------------------------------------


class ChangeLog:
    """Every change read from SharePoint, one partition per list, RowKey sorted like the token.

    Writes are upserts in entity-group transactions, so replaying a page writes no duplicates.
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @property
    def _table(self):
        return self._storage.table(CHANGES_TABLE)

    def append(self, list_id: str, entities: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(entities), MAX_TRANSACTION_SIZE):
            chunk = entities[start : start + MAX_TRANSACTION_SIZE]
            self._table.submit_transaction(
                [("upsert", {**entity, "PartitionKey": list_id}, {"mode": "replace"}) for entity in chunk]
            )

    def page(self, list_id: str, *, after: str, top: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `top` changes after RowKey `after`, and whether more follow."""
        entities = self._table.query_entities(
            "PartitionKey eq @pk and RowKey gt @after",
            parameters={"pk": list_id, "after": after},
            results_per_page=top + 1,
        )
        rows: list[dict[str, Any]] = []
        for entity in entities:
            rows.append(entity)
            if len(rows) > top:
                break
        return rows[:top], len(rows) > top


# --- the notifications queue -------------------------------------------------------------------


class NotificationQueue:
    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def put_all(self, messages: Iterable[str]) -> int:
        """Put every message or none: if one put fails, the ones already put are deleted."""
        queue = self._storage.queue(NOTIFICATIONS_QUEUE)
        sent = []
        try:
            for message in messages:
                sent.append(queue.send_message(message))
        except storage_errors() as error:
            for receipt in sent:
                try:
                    queue.delete_message(receipt)
                except storage_errors():
                    log.error("could not take back queue message %s after a failed put", receipt.id)
            raise StorageUnavailable(str(error)) from error
        return len(sent)


def _is_valid_key(value: str) -> bool:
    """Table keys may not hold '/', '\\', '#', '?' or control characters."""
    return bool(value) and len(value) <= 255 and not any(
        c in "/\\#?" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value
    )
