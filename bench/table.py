"""Side-by-side measurement and the table `make bench` prints."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    name: str
    baseline: str
    samples: list[float]
    baseline_samples: list[float]
    unit: str = "ms"

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
        lines.append(
            f"{row.name:<46} {_value(statistics.median(row.samples), row.unit)} "
            f"{_value(p99(row.samples), row.unit)}   {row.baseline:<40} "
            f"{_value(statistics.median(row.baseline_samples), row.unit)} "
            f"{_value(p99(row.baseline_samples), row.unit)}  {row.ratio:>5.2f}x"
        )
    return "\n".join(lines)


def _value(number: float, unit: str) -> str:
    return f"{number:>7.{0 if number >= 1000 else 2}f}{unit:<3}"
