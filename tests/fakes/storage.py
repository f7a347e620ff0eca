"""In-memory tables and queues that answer the repositories as the storage SDKs do, for the fast
tier: the same methods, the same errors (azure-core's), ETags that change on every write, and the
OData filters this service writes. The integration tests run the same repositories against
Azurite, which keeps these honest.
"""

from __future__ import annotations

import itertools
import operator
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode

from functions.core.resources import QUEUES, TABLES
from functions.core.settings import StorageSettings
from functions.core.storage import Storage

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_CLAUSE = re.compile(r"^\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+(@\w+|'(?:[^']|'')*')\s*$")
_etags = itertools.count(1)


def _etag() -> str:
    return f"W/\"datetime'{next(_etags)}'\""


def matches(filter_text: str, parameters: dict[str, Any], entity: dict[str, Any]) -> bool:
    """`Field op @param` clauses joined by `and` (all this service writes); anything else raises,
    so a new kind of query cannot pass unnoticed in the fast tier."""
    for clause in filter_text.split(" and "):
        found = _CLAUSE.match(clause)
        if found is None:
            raise NotImplementedError(f"the in-memory table does not understand {clause!r}")
        name, op, operand = found.groups()
        value = parameters[operand[1:]] if operand.startswith("@") else operand[1:-1].replace("''", "'")
        if name not in entity:
            return False
        try:
            if not _OPERATORS[op](entity[name], value):
                return False
        except TypeError:
            return False
    return True


class MemoryTable:
    def __init__(self, name: str) -> None:
        self.table_name = name
        self.entities: dict[tuple[str, str], TableEntity] = {}
        self._lock = threading.Lock()
        # Called before every operation with its name: a test makes storage fail here.
        self.before: Callable[[str], None] = lambda operation: None

    # --- single entities -------------------------------------------------------------------------

    def create_table(self) -> None:
        """Tables exist from the start."""

    def create_entity(self, entity: dict[str, Any]) -> dict[str, Any]:
        self.before("create_entity")
        with self._lock:
            key = _key(entity)
            if key in self.entities:
                raise ResourceExistsError("The specified entity already exists.")
            return self._store(key, _sent(entity))

    def get_entity(self, partition_key: str, row_key: str, **_: Any) -> TableEntity:
        self.before("get_entity")
        with self._lock:
            stored = self.entities.get((partition_key, row_key))
            if stored is None:
                raise ResourceNotFoundError("The specified resource does not exist.")
            return _copy(stored)

    def upsert_entity(self, entity: dict[str, Any], mode: UpdateMode = UpdateMode.MERGE) -> dict[str, Any]:
        self.before("upsert_entity")
        with self._lock:
            key = _key(entity)
            current = self.entities.get(key)
            merged = (
                {**current, **_sent(entity)}
                if current is not None and mode is UpdateMode.MERGE
                else _sent(entity)
            )
            return self._store(key, dict(merged))

    def update_entity(
        self,
        entity: dict[str, Any],
        mode: UpdateMode = UpdateMode.MERGE,
        *,
        etag: str | None = None,
        match_condition: MatchConditions | None = None,
    ) -> dict[str, Any]:
        self.before("update_entity")
        with self._lock:
            key = _key(entity)
            current = self._checked(key, etag, match_condition)
            merged = {**current, **_sent(entity)} if mode is UpdateMode.MERGE else _sent(entity)
            return self._store(key, dict(merged))

    def delete_entity(
        self,
        partition_key: str,
        row_key: str,
        *,
        etag: str | None = None,
        match_condition: MatchConditions | None = None,
    ) -> None:
        self.before("delete_entity")
        with self._lock:
            key = (partition_key, row_key)
            try:
                self._checked(key, etag, match_condition)
            except ResourceNotFoundError:
                return  # the SDK answers a delete of nothing with nothing
            del self.entities[key]

    # --- many -------------------------------------------------------------------------------------

    def query_entities(
        self,
        query_filter: str,
        *,
        parameters: dict[str, Any] | None = None,
        select: list[str] | None = None,
        results_per_page: int | None = None,
    ) -> Iterator[TableEntity]:
        self.before("query_entities")
        with self._lock:
            found = [
                _copy(entity, select)
                for _, entity in sorted(self.entities.items())
                if matches(query_filter, parameters or {}, entity)
            ]
        return iter(found)

    def list_entities(self, **_: Any) -> Iterator[TableEntity]:
        self.before("list_entities")
        with self._lock:
            return iter([_copy(entity) for _, entity in sorted(self.entities.items())])

    def submit_transaction(self, operations: Iterable[Any]) -> list[dict[str, Any]]:
        """All or nothing, in one partition, at most 100 operations: as the service requires."""
        self.before("submit_transaction")
        batch = list(operations)
        if not batch or len(batch) > 100 or len({entity["PartitionKey"] for _, entity, *_ in batch}) != 1:
            raise ValueError("a transaction holds 1 to 100 operations on one partition")
        with self._lock:
            saved = dict(self.entities)
            try:
                return [self._apply(operation) for operation in batch]
            except Exception:
                self.entities = saved
                raise

    def _apply(self, operation: Any) -> dict[str, Any]:
        kind, entity, *options = operation
        name = str(getattr(kind, "value", kind)).lower()
        mode = (options[0] if options else {}).get("mode", UpdateMode.MERGE)
        key = _key(entity)
        if name == "create":
            if key in self.entities:
                raise ResourceExistsError("The specified entity already exists.")
            return self._store(key, _sent(entity))
        if name == "upsert":
            current = self.entities.get(key)
            merged = (
                {**current, **_sent(entity)}
                if current is not None and mode is UpdateMode.MERGE
                else _sent(entity)
            )
            return self._store(key, dict(merged))
        if name == "delete":
            if self.entities.pop(key, None) is None:
                raise ResourceNotFoundError("The specified resource does not exist.")
            return {}
        raise NotImplementedError(f"transaction operation {name}")

    def _checked(
        self, key: tuple[str, str], etag: str | None, condition: MatchConditions | None
    ) -> TableEntity:
        current = self.entities.get(key)
        if current is None:
            raise ResourceNotFoundError("The specified resource does not exist.")
        if condition is MatchConditions.IfNotModified and etag != current.metadata["etag"]:
            raise ResourceModifiedError("The update condition specified in the request was not satisfied.")
        return current

    def _store(self, key: tuple[str, str], values: dict[str, Any]) -> dict[str, Any]:
        entity = TableEntity(values)
        entity._metadata = {"etag": _etag(), "timestamp": None}
        self.entities[key] = entity
        return dict(entity.metadata)


def _key(entity: dict[str, Any]) -> tuple[str, str]:
    return str(entity["PartitionKey"]), str(entity["RowKey"])


def _copy(entity: TableEntity, select: list[str] | None = None) -> TableEntity:
    values = {k: v for k, v in entity.items() if select is None or k in select}
    copied = TableEntity(values)
    copied._metadata = entity.metadata.copy()
    return copied


@dataclass
class QueuedMessage:
    content: str
    visible_at: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    inserted_on: datetime = field(default_factory=lambda: datetime.now(UTC))
    pop_receipt: str = field(default_factory=lambda: uuid.uuid4().hex)
    dequeue_count: int = 0


@dataclass
class QueueProperties:
    approximate_message_count: int


class MemoryQueue:
    """A queue with visibility timeouts on a clock the test may move (`now`)."""

    def __init__(self, name: str, clock: Callable[[], float]) -> None:
        self.queue_name = name
        self.messages: list[QueuedMessage] = []
        self._clock = clock
        self._lock = threading.Lock()
        self.before: Callable[[str], None] = lambda operation: None

    def create_queue(self) -> None:
        """Queues exist from the start."""

    def send_message(self, content: str, *, visibility_timeout: int | None = None) -> QueuedMessage:
        self.before("send_message")
        message = QueuedMessage(content, self._clock() + (visibility_timeout or 0))
        with self._lock:
            self.messages.append(message)
        return message

    def receive_messages(
        self, *, max_messages: int = 1, visibility_timeout: int = 30
    ) -> Iterator[QueuedMessage]:
        self.before("receive_messages")
        now = self._clock()
        taken: list[QueuedMessage] = []
        with self._lock:
            for message in self.messages:
                if len(taken) == max_messages:
                    break
                if message.visible_at <= now:
                    message.visible_at = now + visibility_timeout
                    message.dequeue_count += 1
                    message.pop_receipt = uuid.uuid4().hex
                    taken.append(message)
        return iter(taken)

    def peek_messages(self, *, max_messages: int = 1) -> list[QueuedMessage]:
        self.before("peek_messages")
        now = self._clock()
        with self._lock:
            return [m for m in self.messages if m.visible_at <= now][:max_messages]

    def delete_message(self, message: QueuedMessage | str, pop_receipt: str | None = None) -> None:
        self.before("delete_message")
        message_id = message if isinstance(message, str) else message.id
        with self._lock:
            self.messages = [m for m in self.messages if m.id != message_id]

    def get_queue_properties(self) -> QueueProperties:
        self.before("get_queue_properties")
        return QueueProperties(len(self.messages))

    def visible(self) -> list[str]:
        now = self._clock()
        return [m.content for m in self.messages if m.visible_at <= now]

    def take_visible(self) -> list[str]:
        """The messages visible now, off the queue (as a trigger would take them)."""
        now = self._clock()
        with self._lock:
            taken = [m for m in self.messages if m.visible_at <= now]
            self.messages = [m for m in self.messages if m.visible_at > now]
        return [m.content for m in taken]

    def take_all(self) -> list[str]:
        """Every message, visible or not, off the queue."""
        with self._lock:
            taken, self.messages = self.messages, []
        return [m.content for m in taken]


class MemoryStorage(Storage):
    """`Storage` whose tables and queues live in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(StorageSettings(connection_string="UseDevelopmentStorage=true"))
        self.tables: dict[str, MemoryTable] = {name: MemoryTable(name) for name in TABLES}
        self.queues: dict[str, MemoryQueue] = {name: MemoryQueue(name, clock) for name in QUEUES}

    def table(self, name: str) -> Any:
        return self.tables.setdefault(name, MemoryTable(name))

    def queue(self, name: str) -> Any:
        return self.queues[name]

    def table_reader(self, name: str) -> None:
        """No lean REST query in memory: the table fake answers every query."""
        return

    def putter(self, name: str) -> None:
        """No lean REST put in memory: the queue fake takes every message."""
        return

    def table_writer(self, name: str) -> None:
        """No lean REST transaction in memory: the table fake takes every write."""
        return

    def ensure_resources(self) -> None:
        """Everything exists from the start."""

    def fail(self, error: Exception, *, operations: Iterable[str] = ()) -> None:
        """Every table and queue call (or the named ones) raises `error` from now on."""
        names = set(operations)

        def raise_it(operation: str) -> None:
            if not names or operation in names:
                raise error

        for table in self.tables.values():
            table.before = raise_it
        for queue in self.queues.values():
            queue.before = raise_it

    def recover(self) -> None:
        for table in self.tables.values():
            table.before = lambda operation: None
        for queue in self.queues.values():
            queue.before = lambda operation: None


def _sent(entity: dict[str, Any]) -> dict[str, Any]:
    """What the SDK sends: a property whose value is None is left out of the request."""
    return {name: value for name, value in entity.items() if value is not None}
