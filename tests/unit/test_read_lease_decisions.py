"""The read-lease decisions of tests/integration/test_read_leases.py, run again on the in-memory
table: the same tests pass on Azurite and on the fake, so the fast tier can trust the fake."""

from __future__ import annotations

import pytest

from functions.core.read_leases import ReadLeaseStore
from tests.fakes.storage import MemoryStorage
from tests.integration.test_read_leases import *  # noqa: F403 (the same tests, collected here too)


@pytest.fixture  # type: ignore[no-redef]
def leases() -> ReadLeaseStore:
    return ReadLeaseStore(MemoryStorage())
