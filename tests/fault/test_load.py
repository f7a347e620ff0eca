"""Load: notifications 32 at a time while items change on several lists."""

from __future__ import annotations

import threading
from collections import Counter
from functools import partial
from typing import Any

from tests.fault.conftest import ACCEPTED, SHED, arrived, fault_stack, flood, make_changes, run_all
from tests.helpers import wait_until

LISTS = 4
ITEMS_PER_LIST = 40  # 80 changes a list: an add and an update per item
PAUSE = 0.05  # between items, so that reads and changes interleave for a few seconds
FLOODERS = 32


def test_every_change_arrives_exactly_once_under_32_concurrent_notifications(tmp_path):
    with fault_stack(tmp_path) as env:
        lists = [env.subscribed_list() for _ in range(LISTS)]
        entries = [entry for _, entry in lists]
        stop = threading.Event()
        flooding = [partial(flood, env.stack.functions_url, entries, stop) for _ in range(FLOODERS)]
        changing = [
            partial(make_changes, env.stack.emulator_url, list_id, ITEMS_PER_LIST, PAUSE)
            for list_id, _ in lists
        ]

        def changes_then_stop() -> list[Counter[tuple[Any, str]]]:
            try:
                return run_all(changing)
            finally:
                stop.set()

        made, *answers = run_all([changes_then_stop, *flooding])
        statuses: Counter[str] = sum(answers, Counter())
        print(f"{statuses.total()} notifications posted while the changes were made: {dict(statuses)}")
        # Overloaded, the intake may shed load, always with a Retry-After; nothing is lost either way.
        assert set(statuses) <= {ACCEPTED, SHED}, statuses
        assert statuses[ACCEPTED] >= FLOODERS  # every flooder got through at least once

        for (_, entry), expected in zip(lists, made, strict=True):
            wait_until(
                partial(arrived, env, entry, expected),
                timeout=120,
                interval=1,
                what=f"the {expected.total()} changes of subscription {entry['subscriptionId']}",
            )
        env.drain()
        total = LISTS * ITEMS_PER_LIST * 2
        assert [sum(env.changes_of(entry).values()) for entry in entries] == [total // LISTS] * LISTS
        assert env.changes_written() == total  # no change was written twice
