"""The notifications queue's all-or-nothing put, and its one resend on a dropped connection."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.exceptions import ServiceResponseError, ServiceResponseTimeoutError

from functions.core.queue_put import PutReceipt, QueuePutFailed
from functions.core.queue_writer import QueueWriter
from functions.core.storage import StorageUnavailable

DROPPED = ServiceResponseError("('Connection aborted.', RemoteDisconnected('Remote end closed connection'))")
TIMED_OUT = ServiceResponseTimeoutError("Read timed out. (read timeout=1)")


class ScriptedQueue:
    """A queue client whose n-th send raises the n-th scripted error (None: it succeeds)."""

    def __init__(self, *script: Exception | None) -> None:
        self.script = list(script)
        self.sent: list[str] = []
        self.deleted: list[str] = []

    def send_message(self, message: str, **_: Any) -> SimpleNamespace:
        error = self.script.pop(0) if self.script else None
        if error is not None:
            raise error
        self.sent.append(message)
        return SimpleNamespace(id=message, pop_receipt=f"receipt of {message}")

    def delete_message(self, message_id: str, pop_receipt: str) -> None:
        assert pop_receipt == f"receipt of {message_id}"
        self.deleted.append(message_id)


class ScriptedPutter:
    """The lean REST put (functions/core/queue_put.py), scripted the same way."""

    def __init__(self, *script: Exception | None) -> None:
        self.script = list(script)
        self.sent: list[str] = []

    def put(self, message: str) -> PutReceipt:
        error = self.script.pop(0) if self.script else None
        if error is not None:
            raise error
        self.sent.append(message)
        return PutReceipt(message, f"receipt of {message}")


class OneQueueStorage:
    def __init__(self, client: ScriptedQueue, putter: ScriptedPutter | None = None) -> None:
        self.client = client
        self._putter = putter

    def queue(self, name: str) -> ScriptedQueue:
        return self.client

    def putter(self, name: str) -> ScriptedPutter | None:
        return self._putter


def put(client: ScriptedQueue, *messages: str, putter: ScriptedPutter | None = None) -> int:
    return QueueWriter(OneQueueStorage(client, putter)).put_all(iter(messages))  # type: ignore[arg-type]


def test_a_send_whose_connection_dropped_is_sent_once_more():
    client = ScriptedQueue(DROPPED)
    assert put(client, "a", "b") == 2
    assert client.sent == ["a", "b"]


def test_a_send_that_timed_out_is_an_outage_and_the_others_are_taken_back():
    client = ScriptedQueue(None, TIMED_OUT)
    with pytest.raises(StorageUnavailable):
        put(client, "a", "b")
    assert (client.sent, client.deleted) == (["a"], ["a"])


def test_a_connection_dropped_twice_in_a_row_is_an_outage():
    client = ScriptedQueue(DROPPED, DROPPED)
    with pytest.raises(StorageUnavailable):
        put(client, "a")
    assert client.sent == []


def test_the_lean_put_is_used_where_the_account_allows_it_and_taken_back_through_the_sdk():
    client, putter = ScriptedQueue(), ScriptedPutter(None, QueuePutFailed("HTTP 503 Server Busy", status=503))
    with pytest.raises(StorageUnavailable):
        put(client, "a", "b", putter=putter)
    assert (putter.sent, client.sent, client.deleted) == (["a"], [], ["a"])


def test_a_lean_put_the_service_refuses_as_a_bug_is_not_an_outage():
    putter = ScriptedPutter(QueuePutFailed("HTTP 403 Forbidden", status=403))
    with pytest.raises(QueuePutFailed):
        put(ScriptedQueue(), "a", putter=putter)
