"""Running one function the way the host and the Python worker do: a `context` for functions that
ask for one (invocation id, W3C trace context), and one log line per invocation with its outcome."""

from __future__ import annotations

import inspect
import logging
import re
import secrets
import threading
import time
import uuid
from typing import Any

import azure.functions as func
from azure.functions._abc import RetryContext
from azure.functions._abc import TraceContext as AbstractTraceContext

from .config import FunctionSpec

log = logging.getLogger("Host.Function")

# version-traceid-parentid-flags (W3C Trace Context, section 3.2)
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class TraceContext(AbstractTraceContext):
    def __init__(self, trace_parent: str, trace_state: str = "") -> None:
        self._trace_parent = trace_parent
        self._trace_state = trace_state

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return self._trace_state

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class InvocationContext(func.Context):
    """What the Python worker passes as `context`."""

    _thread_local = threading.local

    def __init__(self, function: FunctionSpec, trace_context: TraceContext) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function = function
        self._trace_context = trace_context

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function.name

    @property
    def function_directory(self) -> str:
        return str(self._function.directory)

    @property
    def trace_context(self) -> TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> RetryContext:
        raise NotImplementedError("no retry policy is configured for this function")


def continue_trace(incoming: str | None, trace_state: str = "") -> TraceContext:
    """The invocation's trace context: a child of the caller's `traceparent` when it sent a valid
    one (as the host does for HTTP requests), else the root of a new trace."""
    match = _TRACEPARENT.match((incoming or "").strip().lower())
    if match and set(match.group(1)) != {"0"} and set(match.group(2)) != {"0"}:
        trace_id, flags = match.group(1), match.group(3)
    else:
        trace_id, flags, trace_state = secrets.token_hex(16), "01", ""
    return TraceContext(f"00-{trace_id}-{secrets.token_hex(8)}-{flags}", trace_state)


def invoke(function: FunctionSpec, argument: Any, *, trace: TraceContext | None = None) -> Any:
    """Call the function with its trigger argument (and `context` if it declares one); log outcome
    and duration as the host does; re-raise failures."""
    context = InvocationContext(function, trace or continue_trace(None))
    arguments: dict[str, Any] = {function.trigger["name"]: argument}
    if function.takes_context:
        arguments["context"] = context
    started = time.perf_counter()
    log.info("Executing 'Functions.%s' (Id=%s)", function.name, context.invocation_id)
    try:
        result = function.callable(**arguments)
        if inspect.isawaitable(result):
            raise TypeError("the local host runs synchronous functions only")
    except Exception as error:
        log.error(
            "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms): %s: %s",
            function.name,
            context.invocation_id,
            (time.perf_counter() - started) * 1000,
            type(error).__name__,
            error,
        )
        raise
    log.info(
        "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
        function.name,
        context.invocation_id,
        (time.perf_counter() - started) * 1000,
    )
    return result
