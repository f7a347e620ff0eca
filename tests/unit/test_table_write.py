"""The lean change-log write, in memory: each value typed as the SDK types it, one entity-group
transaction whose every operation must answer 2xx, the account's key or token on it, and which
failures are outages (the integration tests run it against Azurite)."""

from __future__ import annotations

import base64
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any

import pytest
import requests

from functions.core.outbound import RetryPolicy
from functions.core.table_write import TableBatchWriter, TableWriteFailed, typed

KEY = base64.b64encode(b"k" * 32).decode()


class Kind(StrEnum):
    ADD = "add"


def test_values_are_typed_as_the_sdk_types_them():
    moment = datetime(2026, 12, 8, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    guid = uuid.uuid4()
    assert typed(
        {"s": "x", "b": True, "i": 7, "big": 2**40, "f": 0.5, "t": moment, "g": guid, "raw": b"\x00",
         "k": Kind.ADD, "gone": None}
    ) == {
        "s": "x", "b": True, "i": 7,
        "big@odata.type": "Edm.Int64", "big": str(2**40),
        "f@odata.type": "Edm.Double", "f": 0.5,
        "t@odata.type": "Edm.DateTime", "t": "2026-12-08T01:04:05.678901Z",
        "g@odata.type": "Edm.Guid", "g": str(guid),
        "raw@odata.type": "Edm.Binary", "raw": "AA==",
        "k": "add",
    }  # fmt: skip
    assert typed({"n": math.nan, "p": math.inf, "m": -math.inf}) == {
        "n@odata.type": "Edm.Double", "n": "NaN",
        "p@odata.type": "Edm.Double", "p": "Infinity",
        "m@odata.type": "Edm.Double", "m": "-Infinity",
    }  # fmt: skip
    with pytest.raises(TypeError, match="a list is not"):
        typed({"l": [1]})


class Table:
    """Answers a `$batch` as the Table service does: 202, one sub-response per operation."""

    def __init__(self, answers: list[int] | None = None, status: int = 202) -> None:
        self.answers = answers
        self.status = status
        self.sent: list[tuple[str, dict[str, str], bytes]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.sent.append((url, kwargs["headers"], kwargs["data"]))
        answer = requests.Response()
        answer.status_code = self.status
        operations = kwargs["data"].count(b"\r\nPUT ")
        statuses = self.answers or [204] * operations
        answer._content = b"--batchresponse_1\r\n" + b"".join(
            b"HTTP/1.1 %d X\r\n\r\n" % status
            + (
                b'{"odata.error":{"code":"InvalidInput","message":{"value":"0:bad"}}}\r\n'
                if status >= 300
                else b""
            )
            for status in statuses
        )
        return answer


def writer(table: Table, **options: Any) -> TableBatchWriter:
    made = TableBatchWriter("http://127.0.0.1:10002/devstoreaccount1", "changes", retries=0, **options)
    made._session = table  # type: ignore[assignment]
    made._policy = RetryPolicy(max_attempts=1)
    return made


def test_one_transaction_of_insert_or_replace_operations_signed_with_the_account_key():
    table = Table()
    writer(table, account="devstoreaccount1", key=base64.b64decode(KEY)).upsert(
        "scope", [{"RowKey": "it's 1", "n": 1}, {"RowKey": "2", "t": datetime.now(UTC)}]
    )
    [(url, headers, body)] = table.sent
    assert url == "http://127.0.0.1:10002/devstoreaccount1/$batch"
    assert headers["Authorization"].startswith("SharedKeyLite devstoreaccount1:")
    boundary = headers["Content-Type"].split("boundary=")[1]
    text = body.decode()
    assert text.startswith(f"--{boundary}\r\nContent-Type: multipart/mixed; boundary=changeset_")
    assert text.endswith(f"--{boundary}--\r\n")
    operations = text.split("Content-Transfer-Encoding: binary\r\n\r\n")[1:]
    assert len(operations) == 2
    first = operations[0]
    address = "http://127.0.0.1:10002/devstoreaccount1/changes(PartitionKey='scope',RowKey='it%27%27s%201')"
    assert first.startswith(f"PUT {address} HTTP/1.1")
    assert '"PartitionKey":"scope"' in first and '"RowKey":"it\'s 1"' in first


def test_a_token_instead_of_a_key():
    table = Table()
    writer(table, bearer=lambda: "t0ken").upsert("scope", [{"RowKey": "1"}])
    assert table.sent[0][1]["Authorization"] == "Bearer t0ken"


def test_one_refused_operation_refuses_the_transaction_and_is_no_outage():
    with pytest.raises(TableWriteFailed) as failed:
        writer(Table(answers=[400])).upsert("scope", [{"RowKey": "1"}, {"RowKey": "2"}])
    assert failed.value.status == 400 and not failed.value.is_outage and "InvalidInput" in str(failed.value)


def test_a_busy_or_unreachable_service_is_an_outage():
    with pytest.raises(TableWriteFailed) as failed:
        writer(Table(status=503)).upsert("scope", [{"RowKey": "1"}])
    assert failed.value.is_outage


def test_a_transaction_holds_one_to_a_hundred_operations():
    with pytest.raises(ValueError, match="1 to 100"):
        writer(Table()).upsert("scope", [{"RowKey": str(n)} for n in range(101)])
    with pytest.raises(ValueError, match="1 to 100"):
        writer(Table()).upsert("scope", [])
