"""Running one function and logging it the way the host does: one line per invocation."""

from __future__ import annotations

import inspect
import logging
import time
import uuid
from typing import Any

from .config import FunctionSpec

log = logging.getLogger("Host.Function")


def invoke(function: FunctionSpec, argument: Any) -> Any:
    """Call the function with its trigger argument; log outcome and duration; re-raise failures."""
    invocation_id = uuid.uuid4()
    started = time.perf_counter()
    log.info("Executing 'Functions.%s' (Id=%s)", function.name, invocation_id)
    try:
        result = function.callable(**{function.trigger["name"]: argument})
        if inspect.isawaitable(result):
            raise TypeError("the local host runs synchronous functions only")
    except Exception as error:
        log.error(
            "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms): %s: %s",
            function.name, invocation_id, (time.perf_counter() - started) * 1000,
            type(error).__name__, error,
        )
        raise
    log.info(
        "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
        function.name, invocation_id, (time.perf_counter() - started) * 1000,
    )
    return result
