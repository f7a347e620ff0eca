"""Storage clients (tables and queues) and what their errors mean.

A connection string locally (`UseDevelopmentStorage=true` for Azurite, which both SDKs
understand), or identity-based service URIs with the app's managed identity in Azure. The trigger
modules import this module on first use, so the validation echo never pays for the SDKs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, UpdateMode
from azure.identity import ManagedIdentityCredential
from azure.storage.queue import (
    LinearRetry,
    QueueClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from .errors import Outage
from .outbound import pooled_session
from .queue_put import QueuePutter, putter_for_connection_string
from .resources import QUEUES, TABLES
from .settings import StorageSettings
from .storage_rest import CachedBearer
from .table_read import TableReader, reader_for_connection_string, reader_for_identity
from .table_write import TableBatchWriter, writer_for_connection_string, writer_for_identity

if TYPE_CHECKING:
    import requests
    from azure.data.tables import TableClient
    from azure.identity import ManagedIdentityCredential
    from azure.storage.queue import QueueClient


@dataclass(frozen=True)
class StorageTimeouts:
    """Per-call limits for the storage SDKs (their defaults back off for tens of seconds)."""

    connection: float = 3
    read: float = 10
    retries: int = 2


# For the worker, the timers and the management API.
DEFAULT_TIMEOUTS = StorageTimeouts()
# For the notification intake and the health probe: no SDK retries (SharePoint retries the whole
# request), so a hung storage account costs about a second a call within the intake's budget.
FAST_TIMEOUTS = StorageTimeouts(connection=1, read=1, retries=0)


class StorageUnavailable(Outage):
    """Storage could not be reached, timed out, throttled us or failed (5xx): retry later (503).

    Any other storage error (a 4xx) is a bug in this code or its configuration, and is left to
    surface as one.
    """

    error_code = "StorageUnavailable"

    def public_message(self) -> str:
        return "storage is unavailable; retry later"


def is_outage(error: BaseException) -> bool:
    """Network errors, timeouts, 429 and 5xx: the kinds of failure that a retry can mend."""

    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return True
    if isinstance(error, HttpResponseError):
        status = error.status_code
        return status is not None and (status == 429 or status >= 500)
    return False


@contextlib.contextmanager
def outages_reported(operation: str) -> Iterator[None]:
    """Turn an outage inside the block into StorageUnavailable naming `operation`."""
    try:
        yield
    except StorageUnavailable:
        raise
    except Exception as error:
        if is_outage(error):
            raise StorageUnavailable(f"{operation}: {type(error).__name__}: {error}") from error
        raise


class Storage:
    """Lazily built, thread-safe clients for the account named by the settings."""

    def __init__(self, settings: StorageSettings, timeouts: StorageTimeouts = DEFAULT_TIMEOUTS) -> None:
        self._settings = settings
        self._timeouts = timeouts
        self._lock = threading.Lock()
        self._tables: dict[str, TableClient] = {}
        self._queues: dict[str, QueueClient] = {}
        self._putters: dict[str, QueuePutter | None] = {}
        self._readers: dict[str, TableReader | None] = {}
        self._writers: dict[str, TableBatchWriter | None] = {}
        self._credential: ManagedIdentityCredential | None = None
        self._session: requests.Session | None = None

    def table(self, name: str) -> TableClient:
        with self._lock:
            if name not in self._tables:
                self._tables[name] = self._new_table_client(name)
            return self._tables[name]

    def queue(self, name: str) -> QueueClient:
        with self._lock:
            if name not in self._queues:
                self._queues[name] = self._new_queue_client(name)
            return self._queues[name]

    def table_reader(self, name: str) -> TableReader | None:
        """A lean query for the table (functions/core/table_read.py), or None where the SDK must
        read it (`UseDevelopmentStorage=true`, a SAS)."""
        with self._lock:
            if name not in self._readers:
                self._readers[name] = self._new_reader(name)
            return self._readers[name]

    def _new_reader(self, name: str) -> TableReader | None:
        options: dict[str, Any] = {
            "timeout": (float(self._timeouts.connection), float(self._timeouts.read)),
            "retries": self._timeouts.retries,
        }
        settings = self._settings
        if settings.connection_string:
            return reader_for_connection_string(settings.connection_string, name, **options)
        account = _required(settings.table_service_uri, "tableServiceUri")
        return reader_for_identity(account, name, CachedBearer(self._identity()), **options)

    def table_writer(self, name: str) -> TableBatchWriter | None:
        """A lean transaction writer for the table (functions/core/table_write.py), or None where
        the SDK must write (`UseDevelopmentStorage=true`, a SAS)."""
        with self._lock:
            if name not in self._writers:
                self._writers[name] = self._new_writer(name)
            return self._writers[name]

    def _new_writer(self, name: str) -> TableBatchWriter | None:
        options: dict[str, Any] = {
            "timeout": (float(self._timeouts.connection), float(self._timeouts.read)),
            "retries": self._timeouts.retries,
        }
        settings = self._settings
        if settings.connection_string:
            return writer_for_connection_string(settings.connection_string, name, **options)
        account = _required(settings.table_service_uri, "tableServiceUri")
        return writer_for_identity(account, name, CachedBearer(self._identity()), **options)

    def putter(self, name: str) -> QueuePutter | None:
        """A lean put for the queue (functions/core/queue_put.py), or None where the SDK must do
        it (`UseDevelopmentStorage=true`, a SAS)."""
        with self._lock:
            if name not in self._putters:
                self._putters[name] = self._new_putter(name)
            return self._putters[name]

    def _new_putter(self, name: str) -> QueuePutter | None:
        connect, read = float(self._timeouts.connection), float(self._timeouts.read)
        settings = self._settings
        if settings.connection_string:
            return putter_for_connection_string(
                settings.connection_string, name, connect_timeout=connect, read_timeout=read
            )
        account = _required(settings.queue_service_uri, "queueServiceUri").rstrip("/")
        bearer = CachedBearer(self._identity())
        return QueuePutter(f"{account}/{name}", bearer=bearer, connect_timeout=connect, read_timeout=read)

    def ensure_resources(self) -> None:
        """Create the queues and tables the code uses; in Azure, infra/ creates them instead."""

        for table in TABLES:
            with contextlib.suppress(ResourceExistsError):
                self.table(table).create_table()
        for queue in QUEUES:
            with contextlib.suppress(ResourceExistsError):
                self.queue(queue).create_queue()

    def _new_table_client(self, name: str) -> TableClient:

        settings = self._settings
        if settings.connection_string:
            return TableClient.from_connection_string(
                settings.connection_string,
                table_name=name,
                retry_total=self._timeouts.retries,
                retry_backoff_factor=0.2,
                **self._transport(),
            )
        return TableClient(
            endpoint=_required(settings.table_service_uri, "tableServiceUri"),
            table_name=name,
            credential=self._identity(),
            retry_total=self._timeouts.retries,
            retry_backoff_factor=0.2,
            **self._transport(),
        )

    def _new_queue_client(self, name: str) -> QueueClient:

        # The queue SDK's default policy backs off from 15 s: far too long for the intake. (It
        # sleeps float seconds, though its annotations say int.)
        retry = LinearRetry(
            backoff=0.5,  # type: ignore[arg-type]
            random_jitter_range=0.2,  # type: ignore[arg-type]
            retry_total=self._timeouts.retries,
        )
        settings = self._settings
        if settings.connection_string:
            return QueueClient.from_connection_string(
                settings.connection_string,
                queue_name=name,
                message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy(),
                retry_policy=retry,
                **self._transport(),
            )
        return QueueClient(
            account_url=_required(settings.queue_service_uri, "queueServiceUri"),
            queue_name=name,
            credential=self._identity(),
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
            retry_policy=retry,
            **self._transport(),
        )

    def _transport(self) -> dict[str, Any]:
        """Timeouts, and one pooled session that every client of this account shares (called
        under the lock)."""
        if self._session is None:
            self._session = pooled_session()
        return {
            "connection_timeout": self._timeouts.connection,
            "read_timeout": self._timeouts.read,
            "session": self._session,
            "session_owner": False,
        }

    def _identity(self) -> ManagedIdentityCredential:
        if self._credential is None:
            self._credential = ManagedIdentityCredential(client_id=self._settings.managed_identity_client_id)
        return self._credential


class TableRepository:
    """Base of the one-class-per-table repositories: its table, from the shared clients."""

    table_name: ClassVar[str]

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    @property
    def _table(self) -> TableClient:
        return self._storage.table(self.table_name)

    def _replace_if_unchanged(self, entity: dict[str, Any], etag: str) -> dict[str, Any]:
        """Replace the entity only if it still has `etag`; raises azure-core's
        ResourceModifiedError when another writer came first. Returns the new metadata."""

        return self._table.update_entity(
            entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
        )


def _required(value: str | None, name: str) -> str:
    if not value:
        raise ValueError(f"identity-based storage needs AzureWebJobsStorage__{name}")
    return value


def is_valid_key(value: str) -> bool:
    """Table keys may not hold '/', '\\', '#', '?' or control characters."""
    return (
        bool(value)
        and len(value) <= 255
        and not any(c in "/\\#?" or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)
    )


# Entity group transactions take at most 100 operations, all in one partition.
_TRANSACTION_LIMIT = 100


def purge_partition(table: TableClient, partition: str) -> int:
    """Delete every entity of one partition, a hundred to a transaction; returns how many."""
    removed = 0
    batch: list[tuple[str, dict[str, Any]]] = []
    with outages_reported(f"deleting partition {partition} of {table.table_name}"):
        for entity in table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": partition}, select=["PartitionKey", "RowKey"]
        ):
            batch.append(("delete", {"PartitionKey": partition, "RowKey": entity["RowKey"]}))
            if len(batch) == _TRANSACTION_LIMIT:
                table.submit_transaction(batch)
                removed += len(batch)
                batch = []
        if batch:
            table.submit_transaction(batch)
            removed += len(batch)
    return removed
