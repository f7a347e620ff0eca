"""What every test shares: garbage collected at the end of each test, so that a socket, file or
transport a test left open warns (and, warnings being errors, fails) in that test, not in
whichever test the collector happened to run in next."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _collected() -> Iterator[None]:
    yield
    gc.collect()
