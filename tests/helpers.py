"""Small helpers shared by the test suites."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from local.functions_host.config import FunctionSpec
from local.functions_host.invocation import InvocationContext, continue_trace

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds.

    A deadline for waiting on asynchronous work, not a speed assertion.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def invocation_context(function_name: str, traceparent: str | None = None) -> InvocationContext:
    """The `context` the Python worker passes, as the local host builds it."""
    spec = FunctionSpec(function_name, trigger={}, callable=None, directory=Path.cwd())
    return InvocationContext(spec, continue_trace(traceparent))
