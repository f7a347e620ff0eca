"""The share of notification answers over Graph's 3-s deadline, over the last 10 minutes."""

from __future__ import annotations

from functions.core.answer_times import AnswerTimes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_answers_over_three_seconds_are_counted_for_ten_minutes():
    clock = Clock()
    times = AnswerTimes(clock)
    for seconds in (0.2, 3.5, 0.1, 2.9, 10.0):
        times.record(seconds)
    late = times.late_share()
    assert (late.answers, late.late, late.share) == (5, 2, 0.4)
    clock.now = 599.0
    times.record(0.1)
    assert times.late_share().answers == 6
    clock.now = 601.0  # the first five are out of the window
    assert (times.late_share().answers, times.late_share().late) == (1, 0)


def test_no_answers_is_no_late_share():
    assert AnswerTimes(Clock()).late_share().share == 0.0
