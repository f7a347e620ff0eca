"""The read-lease decisions of tests/integration/test_read_leases.py, run again on the in-memory
table: the same tests pass on Azurite and on the fake, so the fast tier can trust the fake."""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.core.read_leases import ReadLeaseStore
from tests.fakes.storage import MemoryStorage
from tests.integration.test_read_leases import *  # noqa: F403 (the same tests, collected here too)


@pytest.fixture  # type: ignore[no-redef]
def leases() -> ReadLeaseStore:
    return ReadLeaseStore(MemoryStorage())


@pytest.fixture(autouse=True)
def quick_reads(monkeypatch) -> None:
    """The same rules with a tenth of the spacing between two reads of one scope: the fast tier
    keeps its seconds, the integration run keeps the real 2 s."""
    monkeypatch.setattr("functions.core.read_leases.MIN_READ_INTERVAL", timedelta(milliseconds=200))
