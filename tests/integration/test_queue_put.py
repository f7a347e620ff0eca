"""The intake's lean queue put against a real Azurite: what it puts is what the SDK and the
Functions queue trigger read (base64 text), it is signed as Azurite checks Shared Key, a message
put can be taken back, and a wrong key or a queue that is not there fail as outages or bugs."""

from __future__ import annotations

import base64
import socket
import uuid

import pytest

from functions.core.queue_put import QueuePutFailed, SharedKey, putter_for_connection_string
from functions.core.settings import StorageSettings
from functions.core.storage import Storage


@pytest.fixture
def azurite(stack) -> str:
    return stack.connection_string


@pytest.fixture
def queue_name(azurite) -> str:
    name = f"put-{uuid.uuid4().hex[:8]}"
    Storage(StorageSettings(connection_string=azurite)).queue(name).create_queue()
    return name


def test_what_the_lean_put_sends_the_sdk_reads_back_as_sent(azurite, queue_name):
    putter = putter_for_connection_string(azurite, queue_name, connect_timeout=1, read_timeout=1)
    assert putter is not None
    text = '{"value": "ünïcode and <xml> & quotes"}'
    receipt = putter.put(text)
    queue = Storage(StorageSettings(connection_string=azurite)).queue(queue_name)
    [message] = list(queue.receive_messages())
    assert message.id == receipt.id and message.content == text
    queue.delete_message(message)
    putter.close()


def test_a_message_put_is_taken_back_with_its_receipt(azurite, queue_name):
    putter = putter_for_connection_string(azurite, queue_name, connect_timeout=1, read_timeout=1)
    assert putter is not None
    receipt = putter.put("take me back")
    queue = Storage(StorageSettings(connection_string=azurite)).queue(queue_name)
    queue.delete_message(receipt.id, receipt.pop_receipt)
    assert list(queue.peek_messages()) == []
    putter.close()


def test_a_wrong_key_is_refused_and_a_missing_queue_is_not_an_outage(azurite, queue_name):
    values = dict(part.split("=", 1) for part in azurite.split(";") if "=" in part)
    putter = putter_for_connection_string(azurite, queue_name, connect_timeout=1, read_timeout=1)
    assert putter is not None
    wrong = type(putter)(
        f"{values['QueueEndpoint']}/{queue_name}",
        shared_key=SharedKey(values["AccountName"], b"not the key"),
    )
    with pytest.raises(QueuePutFailed) as refused:
        wrong.put("x")
    assert refused.value.status == 403 and not refused.value.is_outage
    missing = putter_for_connection_string(azurite, "no-such-queue", connect_timeout=1, read_timeout=1)
    assert missing is not None
    with pytest.raises(QueuePutFailed) as absent:
        missing.put("x")
    assert absent.value.status == 404 and not absent.value.is_outage
    for used in (putter, wrong, missing):
        used.close()


def test_development_storage_and_sas_strings_are_left_to_the_sdk():
    assert (
        putter_for_connection_string("UseDevelopmentStorage=true", "q", connect_timeout=1, read_timeout=1)
        is None
    )
    sas = "QueueEndpoint=https://a.queue.core.windows.net;SharedAccessSignature=sv=2021"
    assert putter_for_connection_string(sas, "q", connect_timeout=1, read_timeout=1) is None


def test_a_stopped_storage_account_is_an_outage():
    putter = putter_for_connection_string(
        "AccountName=a;AccountKey=" + base64.b64encode(b"k").decode() + ";QueueEndpoint=http://127.0.0.1:9",
        "q",
        connect_timeout=0.5,
        read_timeout=0.5,
    )
    assert putter is not None
    with pytest.raises(QueuePutFailed) as down:
        putter.put("x")
    assert down.value.status is None and down.value.is_outage
    putter.close()


def test_idle_connections_the_server_closed_are_replaced_on_the_next_put(azurite, queue_name):
    """Azurite's Node server closes a kept-alive connection after 5 s idle; a put after that
    meets a closed socket, drops every idle one, and succeeds on a new connection."""
    putter = putter_for_connection_string(azurite, queue_name, connect_timeout=1, read_timeout=1)
    assert putter is not None
    putter.warm(connections=3)
    for connection in list(putter._idle):  # as the server would: closed under us
        connection.sock.shutdown(socket.SHUT_RDWR)
    putter.put("after the server closed every idle connection")
    assert putter.idle_connections == 1
    putter.close()
