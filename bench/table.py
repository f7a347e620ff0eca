"""Side-by-side measurement and the table `make bench` prints."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.core.services import Services
from functions.core.settings import Settings
from functions.core.storage import StorageTimeouts

if TYPE_CHECKING:
    from local.stack import Stack

# The bench's own clients seed thousands of rows and read them back while the machine is busy
# with the stack: set-up is not what is measured, so it may wait.
SETUP_TIMEOUTS = StorageTimeouts(connection=10, read=60, retries=3)


@dataclass
class Row:
    name: str
    baseline: str
    samples: list[float]
    baseline_samples: list[float]
    unit: str = "ms"
    # Set when the row could not be measured: the table says why and the other rows still print.
    failure: str | None = None

    @classmethod
    def failed(cls, name: str, error: BaseException) -> Row:
        return cls(name, "", [], [], failure=f"{type(error).__name__}: {error}"[:200])

    @property
    def ratio(self) -> float:
        return statistics.median(self.samples) / statistics.median(self.baseline_samples)


def p99(values: list[float]) -> float:
    return sorted(values)[max(0, math.ceil(len(values) * 0.99) - 1)]


def side_by_side(
    candidate: Callable[[], object], baseline: Callable[[], object], rounds: int
) -> tuple[list[float], list[float]]:
    """Alternate the two so that a noisy moment on the machine lands on both."""
    candidate(), baseline()  # warm connections and caches
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        for action, sink in ((candidate, ours), (baseline, theirs)):
            started = time.perf_counter()
            action()
            sink.append((time.perf_counter() - started) * 1000)
    return ours, theirs


def fresh_python(code: str) -> float:
    """Wall time of a new interpreter running `code`, in ms."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return (time.perf_counter() - started) * 1000


def peak_rss_mib(code: str) -> float:
    """Peak resident memory of a new interpreter after `code` (VmHWM: ru_maxrss survives exec)."""
    probe = code + ("\nprint(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))")
    output = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return float(output.split()[-1]) / 1024


def render(rows: list[Row]) -> str:
    header = (
        f"{'measurement':<46} {'median':>10} {'p99':>10}   {'baseline':<40} {'median':>10} {'p99':>10}"
        f"  {'ratio':>6}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        if row.failure:
            lines.append(f"{row.name:<46} could not run: {row.failure}")
            continue
        lines.append(
            f"{row.name:<46} {_value(statistics.median(row.samples), row.unit)} "
            f"{_value(p99(row.samples), row.unit)}   {row.baseline:<40} "
            f"{_value(statistics.median(row.baseline_samples), row.unit)} "
            f"{_value(p99(row.baseline_samples), row.unit)}  {row.ratio:>5.2f}x"
        )
    return "\n".join(lines)


def bench_services(stack: Stack) -> Services:
    """The function app's object graph, talking to the stack, with set-up timeouts."""
    return Services.from_settings(Settings.from_environ(stack.app_settings()), timeouts=SETUP_TIMEOUTS)


def attempt(name: str, measure: Callable[[], list[Row]]) -> list[Row]:
    """The rows of one group, or a row saying why the group could not run."""
    try:
        return measure()
    except Exception as error:
        print(f"{name}: could not run: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
        return [Row.failed(name, error)]


def _value(number: float, unit: str) -> str:
    return f"{number:>7.{0 if number >= 1000 else 2}f}{unit:<3}"
