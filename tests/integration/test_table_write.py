"""The worker's lean change-log write against a real Azurite: what it writes reads back as what the
SDK's transaction writes (every property type a row can hold), all or none, and a stopped account
is an outage."""

from __future__ import annotations

import base64
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from azure.data.tables import EdmType, TransactionOperation, UpdateMode

from functions.core.change_log import ChangeLog
from functions.core.settings import StorageSettings
from functions.core.storage import Storage, StorageUnavailable
from functions.core.table_write import TableWriteFailed, writer_for_connection_string

ROW = {
    "subscriptionId": str(uuid.uuid4()),
    "source": "sharepoint",
    "itemId": 42,
    "big": 2**40,
    "negative": -(2**31),
    "resync": False,
    "ratio": 0.25,
    "notANumber": math.nan,
    "time": datetime(2026, 12, 8, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=2))),
    "id": uuid.UUID("6a7e4fa6-0c7f-4a25-9d3e-0123456789ab"),
    "raw": b"\x00\x01binary",
    "subject": "Ann's “quoted” change — ünïcødé",
    "absent": None,
}


def test_the_lean_write_reads_back_as_the_sdks_transaction_writes(stack):
    storage = Storage(StorageSettings(connection_string=stack.connection_string))
    writer = storage.table_writer("changes")
    assert writer is not None
    lean_scope, sdk_scope = f"lean-{uuid.uuid4().hex[:8]}", f"sdk-{uuid.uuid4().hex[:8]}"
    keys = ["0001", "it's a key", "ünïcødé"]
    writer.upsert(lean_scope, [{**ROW, "RowKey": key} for key in keys])
    table = storage.table("changes")
    table.submit_transaction(
        [
            (
                TransactionOperation.UPSERT,
                {**ROW, "big": (ROW["big"], EdmType.INT64), "RowKey": key, "PartitionKey": sdk_scope},
                {"mode": UpdateMode.REPLACE},
            )
            for key in ["0001"]
        ]
    )
    lean = table.get_entity(lean_scope, "0001")
    sdk = table.get_entity(sdk_scope, "0001")
    assert set(lean) == set(sdk)
    for name in sdk:
        if name in ("PartitionKey",):
            continue
        if name == "notANumber":
            assert math.isnan(lean[name]) and math.isnan(sdk[name])
        else:
            assert lean[name] == sdk[name], name
    assert lean["big"].edm_type is EdmType.INT64 and lean["time"] == ROW["time"]
    written = {row["RowKey"] for row in table.query_entities(f"PartitionKey eq '{lean_scope}'")}
    assert written == set(keys)


def test_the_change_log_writes_through_it_and_a_rewrite_is_the_same_rows(stack):
    storage = Storage(StorageSettings(connection_string=stack.connection_string))
    log = ChangeLog(storage)
    scope = f"log-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    rows = [{"RowKey": f"{n:020d}", "changeType": "add", "itemId": n, "time": now} for n in range(250)]
    assert log.append(scope, rows) == [row["RowKey"] for row in rows]
    assert log.append(scope, rows[:10]) == [row["RowKey"] for row in rows[:10]]  # a redelivered read
    stored = list(storage.table("changes").query_entities(f"PartitionKey eq '{scope}'"))
    assert len(stored) == 250 and stored[7]["itemId"] == 7 and stored[7]["time"] == now


def test_a_refused_transaction_writes_nothing_and_is_not_an_outage(stack):
    storage = Storage(StorageSettings(connection_string=stack.connection_string))
    writer = storage.table_writer("changes")
    assert writer is not None
    scope = f"refused-{uuid.uuid4().hex[:8]}"
    with pytest.raises(TableWriteFailed) as failed:
        writer.upsert(scope, [{"RowKey": "fine", "n": 1}, {"RowKey": "not/allowed", "n": 2}])
    assert failed.value.status == 400 and not failed.value.is_outage
    assert list(storage.table("changes").query_entities(f"PartitionKey eq '{scope}'")) == []  # all or none
    with pytest.raises(TypeError, match="odd: a dict"):  # caught before anything is sent
        writer.upsert(scope, [{"RowKey": "fine", "odd": {"a": 1}}])


def test_a_stopped_account_is_an_outage_and_the_change_log_says_storage_unavailable():
    dead = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=" + base64.b64encode(b"k").decode()
    down = writer_for_connection_string(
        dead + ";TableEndpoint=http://127.0.0.1:9", "changes", timeout=(0.5, 0.5)
    )
    assert down is not None
    with pytest.raises(TableWriteFailed) as failed:
        down.upsert("x", [{"RowKey": "1"}])
    assert failed.value.is_outage
    log = ChangeLog(Storage(StorageSettings(connection_string=dead + ";TableEndpoint=http://127.0.0.1:9/a")))
    with pytest.raises(StorageUnavailable):
        log.append("x", [{"RowKey": "1"}])
    assert writer_for_connection_string("UseDevelopmentStorage=true", "changes") is None
