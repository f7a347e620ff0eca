"""The notifications queue's all-or-nothing put, and its one resend on a dropped connection."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ServiceResponseError, ServiceResponseTimeoutError

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

    def send_message(self, message: str, **_: Any) -> str:
        error = self.script.pop(0) if self.script else None
        if error is not None:
            raise error
        self.sent.append(message)
        return message

    def delete_message(self, receipt: str) -> None:
        self.deleted.append(receipt)


class OneQueueStorage:
    def __init__(self, client: ScriptedQueue) -> None:
        self.client = client

    def queue(self, name: str) -> ScriptedQueue:
        return self.client


def put(client: ScriptedQueue, *messages: str) -> int:
    return QueueWriter(OneQueueStorage(client)).put_all(iter(messages))  # type: ignore[arg-type]


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
