"""What the local host reads before it starts: settings, host.json, and the app's bindings."""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FUNCTION_KEY = "local-function-key"
DEFAULT_MASTER_KEY = "local-master-key"


def load_local_settings(
    app_dir: Path, environ: MutableMapping[str, str] | None = None
) -> MutableMapping[str, str]:
    """`local.settings.json` Values become environment variables, unless the environment already
    sets them (as Core Tools does)."""
    environ = os.environ if environ is None else environ
    path = app_dir / "local.settings.json"
    if path.exists():
        values = json.loads(path.read_text()).get("Values", {})
        for name, value in values.items():
            environ.setdefault(name, str(value))
    return environ


def resolve_setting_expression(value: str, environ: Mapping[str, str]) -> str:
    """`%NAME%` in a binding is read from the app settings, like the real host does."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise KeyError(f"binding expression %{name}% names an app setting that is not set")
        return environ[name]

    return re.sub(r"%([^%]+)%", lookup, value)


def timespan_seconds(value: str) -> float:
    """host.json writes durations as .NET TimeSpans: `hh:mm:ss[.fff]` or `d.hh:mm:ss`."""
    days = 0
    if value.count(".") and value.index(".") < value.index(":"):
        day_text, _, value = value.partition(".")
        days = int(day_text)
    hours, minutes, seconds = value.split(":")
    return days * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def apply_host_overrides(host: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """App settings named `AzureFunctionsJobHost__path__to__key` override host.json values."""
    prefix = "AzureFunctionsJobHost__"
    for name, value in environ.items():
        if not name.startswith(prefix):
            continue
        *parents, leaf = name[len(prefix) :].split("__")
        node = host
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return host


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the real host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5

    @classmethod
    def from_host_json(cls, host: dict[str, Any]) -> QueueOptions:
        queues = host.get("extensions", {}).get("queues", {})
        batch_size = int(queues.get("batchSize", cls.batch_size))
        return cls(
            batch_size=batch_size,
            new_batch_threshold=int(queues.get("newBatchThreshold", batch_size // 2)),
            max_polling_interval=timespan_seconds(queues["maxPollingInterval"])
            if "maxPollingInterval" in queues
            else cls.max_polling_interval,
            visibility_timeout=timespan_seconds(queues["visibilityTimeout"])
            if "visibilityTimeout" in queues
            else cls.visibility_timeout,
            max_dequeue_count=int(queues.get("maxDequeueCount", cls.max_dequeue_count)),
        )


@dataclass(frozen=True)
class FunctionSpec:
    """One function as the host sees it: its name, trigger binding, and the Python callable."""

    name: str
    trigger: dict[str, Any]
    callable: Any
    directory: Path

    @property
    def trigger_type(self) -> str:
        return self.trigger["type"]

    @functools.cached_property
    def takes_context(self) -> bool:
        """Whether the function declares `context` (read once: a signature costs microseconds a
        call, which the intake's hot path notices)."""
        return "context" in inspect.signature(self.callable).parameters


@dataclass(frozen=True)
class HostConfig:
    app_dir: Path
    functions: list[FunctionSpec]
    route_prefix: str
    queue_options: QueueOptions
    function_key: str
    master_key: str
    environ: Mapping[str, str] = field(repr=False)

    def is_disabled(self, name: str) -> bool:
        """`AzureWebJobs.<name>.Disabled` = true turns a function off, as in Azure."""
        value = self.environ.get(f"AzureWebJobs.{name}.Disabled", "")
        return value.strip().lower() in ("1", "true")


def load_host_config(app_dir: Path, module: str = "function_app") -> HostConfig:
    environ = load_local_settings(app_dir)
    host = apply_host_overrides(json.loads((app_dir / "host.json").read_text()), environ)
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    app = importlib.import_module(module).app
    functions = []
    for function in app.get_functions():
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
        functions.append(
            FunctionSpec(function.get_function_name(), trigger, function.get_user_function(), app_dir)
        )
    return HostConfig(
        app_dir=app_dir,
        functions=functions,
        route_prefix=host.get("extensions", {}).get("http", {}).get("routePrefix", "api").strip("/"),
        queue_options=QueueOptions.from_host_json(host),
        function_key=environ.get("FUNCTIONS_KEY", DEFAULT_FUNCTION_KEY),
        master_key=environ.get("FUNCTIONS_MASTER_KEY", DEFAULT_MASTER_KEY),
        environ=environ,
    )
