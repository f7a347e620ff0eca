"""Child processes of the local stack: free ports, readiness probes, a service that stops in
order, and stop signals that cannot interrupt a stop under way."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Free to listen on: nothing listens there. Sockets of a closed server still in TIME-WAIT
    do not count, as with the servers themselves (uvicorn and Azurite bind with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


_PR_SET_PDEATHSIG = 1
# Loaded before any fork: the child only calls into it (no dlopen between fork and exec).
_LIBC = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """For Popen's preexec_fn: the child gets SIGTERM when the runner dies, even by SIGKILL."""

    def arrange() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the runner died before prctl took effect
            os._exit(1)

    return arrange


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 60) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def spawn(name: str, command: list[str], log_dir: Path, env: dict[str, str] | None = None) -> Service:
    """Start `command` with its output in `log_dir/{name}.log`, in a session of its own (a Ctrl-C
    in the terminal reaches the runner only, which stops the children in order), dying with the
    runner even when that is killed outright."""
    log_path = log_dir / f"{name}.log"
    # The child keeps its own copy of the descriptor; ours is closed once it has started.
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=die_with_parent(os.getpid()),
        )
    return Service(name, process, log_path)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[Callable[[], bool]]:
    """Ctrl-C, SIGTERM (kill, supervisors, IDEs) and SIGHUP (a closed terminal) end the wait with
    KeyboardInterrupt, once: signals that come while the stack stops in order are noted and
    ignored, so a second `kill` cannot interrupt a child's stop halfway (and leave it running
    past the runner). Yields a function that says whether a stop was asked for."""
    asked: list[int] = []

    def stop_requested(signum: int, frame: FrameType | None) -> None:
        first = not asked
        asked.append(signum)
        if first:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {stop_signal: signal.signal(stop_signal, stop_requested) for stop_signal in STOP_SIGNALS}
    try:
        yield lambda: bool(asked)
    finally:
        for stop_signal, handler in previous.items():
            signal.signal(stop_signal, handler)
