"""Start and stop the local stack: Azurite, the Microsoft 365 emulator, the local Functions host.

`make run` runs `python -m local.stack`: the stack on its well-known ports until Ctrl-C.
Tests and benchmarks use `Stack` with free ports, so two runs never collide.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.core.sinks.sealing import new_key_ring_setting
from local.azurite import development_connection_string
from local.certificates import new_teams_certificate
from local.functions_host.config import DEFAULT_FUNCTION_KEY, DEFAULT_MASTER_KEY
from local.m365.graph.rich import KEYS_PATH
from local.m365.tokens import DEFAULT_APP_ID
from local.processes import (
    ROOT,
    Service,
    free_port,
    port_is_free,
    spawn,
    stopped_by_signals,
    wait_for_http,
    wait_for_port,
)

AZURITE = ROOT / "node_modules" / ".bin" / "azurite"


class PortsBusy(RuntimeError):
    """Another process (often an earlier `make run`) holds ports the stack needs."""


# Environment variables that move `make run`'s ports, and the Ports field each one sets.
PORT_SETTINGS = {
    "AZURITE_BLOB_PORT": "blob",
    "AZURITE_QUEUE_PORT": "queue",
    "AZURITE_TABLE_PORT": "table",
    "M365_EMULATOR_PORT": "emulator",
    "FUNCTIONS_PORT": "functions",
}


@dataclass
class Ports:
    blob: int = 10000
    queue: int = 10001
    table: int = 10002
    emulator: int = 7072
    functions: int = 7071

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port(), free_port())

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Ports:
        """The well-known ports, each of which an environment variable can move."""
        defaults = cls()
        return cls(
            **{
                field: int(environ.get(name, getattr(defaults, field)))
                for name, field in PORT_SETTINGS.items()
            }
        )

    def named(self) -> dict[str, int]:
        return {
            "Azurite blob": self.blob,
            "Azurite queue": self.queue,
            "Azurite table": self.table,
            "Microsoft 365 emulator": self.emulator,
            "Functions host": self.functions,
        }

    def check_free(self) -> None:
        busy = [f"{port} ({name})" for name, port in self.named().items() if not port_is_free(port)]
        if busy:
            raise PortsBusy(
                "ports in use: " + ", ".join(busy) + ". Stop whatever holds them (an earlier `make run`?), "
                "or choose others with " + ", ".join(PORT_SETTINGS) + "."
            )


@dataclass
class Stack:
    """The three processes; use as a context manager. Logs go to files under `log_dir`."""

    ports: Ports = field(default_factory=Ports.free)
    delivery_interval: float = 0.5
    retry_interval: float = 2.0  # SharePoint's retry delay, and Graph's first one (then doubling)
    # How late Graph sends to an endpoint it has marked slow (2026: 10 minutes). Tests on a busy
    # machine shorten it; the thresholds themselves stay Graph's (tests/unit/test_graph_delivery.py).
    graph_slow_delay: float = 600.0
    extra_settings: dict[str, str] = field(default_factory=dict)
    start_functions_host: bool = True
    # Azurite keeps its data here, so that it can be stopped and started again without losing it
    # (the fault tests); None keeps it in memory.
    storage_dir: Path | None = None
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="m365-stack-")))
    # The key ring that seals sink secrets: one per stack, kept across host restarts, since the
    # stored secrets open only under it.
    sealing_keys: str = field(default_factory=new_key_ring_setting)
    # The certificate Teams' rich notifications are encrypted to (Key Vault's, in Azure).
    teams_certificate: str = field(default_factory=new_teams_certificate)
    # `multi`: the service serves every tenant that consents to MULTI_TENANT_APP_ID, whose
    # credential is the emulator's managed identity (a federated identity credential).
    tenancy: str = "single"
    home_tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    multi_tenant_app_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    services: list[Service] = field(default_factory=list)

    @property
    def connection_string(self) -> str:
        return development_connection_string(
            blob_port=self.ports.blob, queue_port=self.ports.queue, table_port=self.ports.table
        )

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.emulator}"

    @property
    def functions_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.functions}"

    def app_settings(self) -> dict[str, str]:
        """The settings the function app runs with locally (what infra/ sets in Azure)."""
        return {
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "AzureWebJobsStorage": self.connection_string,
            "NOTIFICATION_BASE_URL": self.functions_url,
            "SHAREPOINT_TENANT_URL": self.emulator_url,
            "GRAPH_BASE_URL": self.emulator_url,
            "SHAREPOINT_AUTH": "emulator",
            "RENEWAL_SCHEDULE": "0 0 */6 * * *",
            "RENEWAL_WINDOW_DAYS": "45",
            "SWEEP_SCHEDULE": "0 0 * * * *",
            "SWEEP_MAX_AGE_HOURS": "24",
            # The emulator's connector receivers are plain http on loopback; never set in Azure.
            "ALLOW_LOOPBACK_HTTP_SINKS": "true",
            "SINK_SEALING_KEYS": self.sealing_keys,
            "TEAMS_CERTIFICATE": self.teams_certificate,
            # The emulator issues the service's tokens to this app id, and validation tokens to it.
            "GRAPH_APP_ID": DEFAULT_APP_ID,
            "IDENTITY_KEYS_URL": self.emulator_url + KEYS_PATH,
            "SINK_CATCH_UP_SCHEDULE": "0 */5 * * * *",
            "FUNCTIONS_KEY": DEFAULT_FUNCTION_KEY,
            "FUNCTIONS_MASTER_KEY": DEFAULT_MASTER_KEY,
            **(self._multi_tenant_settings() if self.tenancy == "multi" else {}),
            **self.extra_settings,
        }

    def _multi_tenant_settings(self) -> dict[str, str]:
        return {
            "TENANCY": "multi",
            "SHAREPOINT_TENANT_ID": self.home_tenant_id,
            "MULTI_TENANT_APP_ID": self.multi_tenant_app_id,
            "LOGIN_AUTHORITY": self.emulator_url,
        }

    def register_multi_tenant_app(self) -> None:
        """What the deploy does in Azure (infra/, docs/tenants.md): the multi-tenant app, its
        consent redirect URI, and the managed identity as its federated identity credential."""
        import httpx

        identity = httpx.get(f"{self.emulator_url}/_emulator/managed-identity", timeout=10).json()
        httpx.post(
            f"{self.emulator_url}/_emulator/apps",
            json={
                "appId": self.multi_tenant_app_id,
                "redirectUris": [f"{self.functions_url}/api/consent"],
                "federatedCredentials": [{**identity, "audiences": ["api://AzureADTokenExchange"]}],
            },
            timeout=10,
        ).raise_for_status()

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        # Otherwise a process already listening would answer the readiness probes for ours.
        self.ports.check_free()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.start_azurite()
        self.ensure_storage_resources()
        self.start_emulator()
        if self.start_functions_host:
            self.start_host()

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    def start_azurite(self) -> Service:
        if not AZURITE.exists():
            raise FileNotFoundError(f"{AZURITE} is missing: run `npm ci` (make does it)")
        command = [
            str(AZURITE),
            "--silent",
            "--skipApiVersionCheck",
            "--disableProductStyleUrl",
            "--disableTelemetry",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(self.ports.blob),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(self.ports.queue),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(self.ports.table),
            # In memory, like the emulator: a restart never leaves subscriptions to lists that
            # no longer exist.
            *(["--location", str(self.storage_dir)] if self.storage_dir else ["--inMemoryPersistence"]),
        ]
        service = self._spawn("azurite", command)
        for port in (self.ports.blob, self.ports.queue, self.ports.table):
            wait_for_port(port, service.process)
        return service

    def ensure_storage_resources(self) -> None:
        """The queues and tables the app uses; in Azure, infra/ creates them."""
        from functions.core.settings import StorageSettings
        from functions.core.storage import Storage

        Storage(StorageSettings(connection_string=self.connection_string)).ensure_resources()

    def start_emulator(self) -> Service:
        service = self._spawn(
            "m365-emulator",
            [
                sys.executable,
                "-m",
                "local.m365.server",
                "--port",
                str(self.ports.emulator),
                "--delivery-interval",
                str(self.delivery_interval),
                "--retry-interval",
                str(self.retry_interval),
                "--graph-retry-base",
                str(self.retry_interval),
                "--graph-slow-delay",
                str(self.graph_slow_delay),
                "--tenant-id",
                self.home_tenant_id,
            ],
        )
        wait_for_http(f"{self.emulator_url}/_emulator/health", service.process)
        if self.tenancy == "multi":
            self.register_multi_tenant_app()
        return service

    def start_host(self, port: int | None = None, *, untouched: bool = False) -> Service:
        """The Functions host on the stack's port, or another instance of the app on `port`.
        `untouched`: wait for the port alone, so that no request has been served when it returns
        (what a cold instance's first request meets)."""
        port = port or self.ports.functions
        name = "functions-host" if port == self.ports.functions else f"functions-host-{port}"
        service = self._spawn(
            name,
            [sys.executable, "-m", "local.functions_host", "--port", str(port)],
            env=self.app_settings(),
        )
        if untouched:
            wait_for_port(port, service.process, timeout=60)
        else:
            wait_for_http(f"http://127.0.0.1:{port}/api/health", service.process, timeout=60)
        return service

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL, as a crashed instance goes: no shutdown, nothing finished."""
        service = self.service(name)
        service.process.kill()
        service.process.wait()
        self.services.remove(service)

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Service:
        service = spawn(name, command, self.log_dir, env)
        self.services.append(service)
        return service


def main() -> None:
    """`make run`: the stack on its default ports until Ctrl-C, SIGTERM or SIGHUP."""
    stack = Stack(
        ports=Ports.from_environ(os.environ),
        tenancy=os.environ.get("TENANCY", "single"),
        delivery_interval=float(os.environ.get("M365_EMULATOR_DELIVERY_INTERVAL", "5")),
        retry_interval=float(os.environ.get("M365_EMULATOR_RETRY_INTERVAL", "30")),
        log_dir=ROOT / ".run",
        sealing_keys=local_setting(ROOT / "local.settings.json", "SINK_SEALING_KEYS", new_key_ring_setting),
        teams_certificate=local_setting(
            ROOT / "local.settings.json", "TEAMS_CERTIFICATE", new_teams_certificate
        ),
    )
    with stopped_by_signals() as stop_asked:
        try:
            with stack:
                print(describe(stack) + "\nCtrl-C stops everything.", flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    while not stop_asked() and all(s.process.poll() is None for s in stack.services):
                        time.sleep(0.5)
                print("\nstopping...", flush=True)
        except KeyboardInterrupt:
            pass  # asked to stop while starting: what had started is stopped already
        except PortsBusy as error:
            sys.exit(f"make run: {error}")
        print("stopped.", flush=True)


def local_setting(path: Path, name: str, new: Callable[[], str]) -> str:
    """A secret setting of `make run` (the key ring for sink secrets, the Teams certificate),
    generated into local.settings.json the first time (the file is git-ignored), so what one run
    sealed or subscribed with opens in the next."""
    import json

    settings: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"IsEncrypted": False}
    values: dict[str, Any] = settings.setdefault("Values", {})
    if not values.get(name):
        values[name] = new()
        path.write_text(json.dumps(settings, indent=2) + "\n")
        path.chmod(0o600)
    return str(values[name])


def describe(stack: Stack) -> str:
    return "\n".join(
        [
            f"Local stack is up (logs in {stack.log_dir}):",
            f"  Functions host      {stack.functions_url}   (function key: {DEFAULT_FUNCTION_KEY}, "
            f"master key: {DEFAULT_MASTER_KEY})",
            f"  Notification URL    {stack.functions_url}/api/notifications/sharepoint",
            f"  Management API      {stack.functions_url}/api/subscriptions   (header x-functions-key)",
            f"  Microsoft 365 emulator {stack.emulator_url}  (SharePoint and Graph; control surface: "
            "/_emulator/)",
            f"  Azurite             blob {stack.ports.blob}, queue {stack.ports.queue}, "
            f"table {stack.ports.table}",
            *(
                [
                    f"  Many tenants        home {stack.home_tenant_id}, multi-tenant app "
                    f"{stack.multi_tenant_app_id}; a guest: POST {stack.emulator_url}/_emulator/tenants, "
                    f"then POST {stack.functions_url}/api/tenants (docs/tenants.md)"
                ]
                if stack.tenancy == "multi"
                else []
            ),
        ]
    )


if __name__ == "__main__":
    main()
