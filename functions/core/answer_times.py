"""How fast this instance answers the notification URLs: Graph counts an answer later than 3 s
as a failed attempt, and an endpoint with more than 10% of them in 10 minutes as slow (its
notifications then come 10 minutes late). Kept per instance, in memory: the health check says
what share of this instance's answers in the window were late."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

GRAPH_DEADLINE_SECONDS = 3.0
WINDOW_SECONDS = 600.0


@dataclass(frozen=True)
class LateShare:
    answers: int
    late: int

    @property
    def share(self) -> float:
        return self.late / self.answers if self.answers else 0.0


class AnswerTimes:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: deque[tuple[float, bool]] = deque()

    def record(self, seconds: float) -> None:
        now = self._clock()
        with self._lock:
            self._answers.append((now, seconds > GRAPH_DEADLINE_SECONDS))
            self._forget_before(now - WINDOW_SECONDS)

    def late_share(self) -> LateShare:
        now = self._clock()
        with self._lock:
            self._forget_before(now - WINDOW_SECONDS)
            return LateShare(len(self._answers), sum(late for _, late in self._answers))

    def _forget_before(self, moment: float) -> None:
        while self._answers and self._answers[0][0] < moment:
            self._answers.popleft()


INTAKE_ANSWERS = AnswerTimes()
