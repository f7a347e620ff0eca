"""`make run` (python -m local.stack) as a developer, a supervisor or an IDE treats it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from local.processes import ROOT, free_port
from local.stack import PORT_SETTINGS
from tests.helpers import wait_until

READY = "Local stack is up"


def children_of(pid: int) -> set[int]:
    found = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.add(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class DevServer:
    def __init__(self, tmp_path: Path) -> None:
        self.children: set[int] = set()
        self.ports = {name: free_port() for name in PORT_SETTINGS}
        self.output = tmp_path / "make-run.out"
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "local.stack"],
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, **{name: str(port) for name, port in self.ports.items()}},
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_ready(self) -> set[int]:
        wait_until(
            lambda: READY in self.text() or self.process.poll() is not None, timeout=90, what="make run"
        )
        assert READY in self.text(), self.text()
        self.children = children_of(self.process.pid)
        assert len(self.children) == 3, self.children  # Azurite, the emulator, the Functions host
        return self.children

    def kill(self) -> None:
        """Teardown: the runner and, should a test have failed, any child it left behind."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def dev_server(tmp_path):
    server = DevServer(tmp_path)
    yield server
    server.kill()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_stops_every_child(dev_server, stop_signal):
    children = dev_server.wait_ready()
    dev_server.process.send_signal(stop_signal)
    assert dev_server.process.wait(timeout=60) == 0
    assert not any(alive(pid) for pid in children)
    assert "stopping" in dev_server.text()


def test_signals_that_come_during_the_stop_do_not_cut_it_short(dev_server):
    """`kill -TERM` to make run's process group, twice, as a supervisor that loses patience does:
    the stop goes on in order, with no traceback, and no child outlives the runner."""
    children = dev_server.wait_ready()
    dev_server.process.send_signal(signal.SIGTERM)
    wait_until(lambda: "stopping" in dev_server.text(), timeout=30, what="the stop to begin")
    for again in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        dev_server.process.send_signal(again)
    assert dev_server.process.wait(timeout=60) == 0
    assert not any(alive(pid) for pid in children)
    assert "Traceback" not in dev_server.text() and "stopped." in dev_server.text()


def test_the_children_die_with_the_runner_even_when_it_is_killed_outright(dev_server):
    children = dev_server.wait_ready()
    dev_server.process.kill()
    dev_server.process.wait()
    wait_until(lambda: not any(alive(pid) for pid in children), timeout=30, what="orphans to exit")


def test_a_busy_port_is_refused_by_name_before_anything_starts(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        ports = {name: str(free_port()) for name in PORT_SETTINGS} | {"FUNCTIONS_PORT": str(busy)}
        result = subprocess.run(
            [sys.executable, "-m", "local.stack"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, **ports},
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert f"{busy} (Functions host)" in result.stderr
    assert READY not in result.stdout
