"""The drain's lean change-log read against a real Azurite: the rows it reads are the rows the
SDK reads (a time as a datetime, numbers as numbers), in key order, a page at a time, and a
stopped account is an outage."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from functions.core.change_log import ChangeLog, row_to_view
from functions.core.settings import StorageSettings
from functions.core.storage import Storage, StorageUnavailable
from functions.core.table_read import TableReadFailed, reader_for_connection_string


def test_the_lean_read_gives_the_rows_the_sdk_gives(stack):
    storage = Storage(StorageSettings(connection_string=stack.connection_string))
    log = ChangeLog(storage)
    scope = f"lean-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC).replace(microsecond=123000)
    log.append(
        scope,
        [
            {"RowKey": f"{n:020d}", "subscriptionId": "s", "source": "graph", "changeType": "update",
             "itemId": n, "time": now, "subject": "it's", "resync": n == 0}
            for n in range(1_500)
        ],
    )  # fmt: skip
    lean = log.following(scope, after="", limit=1_200)
    sdk = list(storage.table("changes").query_entities(f"PartitionKey eq '{scope}'"))[:1_200]
    assert [row["RowKey"] for row in lean] == [row["RowKey"] for row in sdk]
    assert lean[5]["time"] == sdk[5]["time"] == now
    assert [row_to_view(row) for row in lean[:3]] == [row_to_view(row) for row in sdk[:3]]
    assert log.following(scope, after=lean[-1]["RowKey"], limit=1_000)[0]["RowKey"] == f"{1_200:020d}"


def test_a_stopped_account_is_an_outage_and_a_refusal_is_not():
    down = reader_for_connection_string(
        "AccountName=a;AccountKey=" + base64.b64encode(b"k").decode() + ";TableEndpoint=http://127.0.0.1:9",
        "changes",
        timeout=(0.5, 0.5),
    )
    assert down is not None
    with pytest.raises(TableReadFailed) as failed:
        list(down.query("PartitionKey eq 'x'", top=10))
    assert failed.value.is_outage
    assert reader_for_connection_string("UseDevelopmentStorage=true", "changes") is None


def test_the_change_log_reports_an_unreachable_account_as_storage_unavailable(stack):
    dead = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=" + base64.b64encode(b"k").decode()
    log = ChangeLog(Storage(StorageSettings(connection_string=dead + ";TableEndpoint=http://127.0.0.1:9/a")))
    with pytest.raises(StorageUnavailable):
        log.following("x", after="", limit=10)
