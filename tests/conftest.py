"""What every test shares: garbage collected at the end of each test module, so that a socket, file
or transport a module left open warns (and, warnings being errors, fails) there, at its last test,
and not in whichever test the collector happened to run in next. Once a module rather than once a
test: a full collection per test cost the fast tier 15 s."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def _collected() -> Iterator[None]:
    yield
    gc.collect()
