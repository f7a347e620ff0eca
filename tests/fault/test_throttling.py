"""A throttling storm: SharePoint answers 429 and 503 with Retry-After to most calls for a while."""

from __future__ import annotations

from collections import Counter
from functools import partial

from tests.fault.conftest import SITE, arrived, fault_stack, run_all
from tests.helpers import wait_until

LISTS = 3
ITEMS = 10


def test_every_change_arrives_through_a_throttling_storm_and_every_wait_is_honoured(tmp_path):
    with fault_stack(tmp_path) as env:
        lists = [env.subscribed_list() for _ in range(LISTS)]
        # Every read of changes and of the current token, on every list, throttled in turn.
        for operation, status in (("GetChanges", 429), ("GetChanges", 503), ("GetList", 429)):
            env.emulator.inject_fault(operation, status, retry_after=2, times=4)

        def change(list_id: str) -> Counter:
            items = [env.emulator.add_item(SITE, list_id, f"item {n}") for n in range(ITEMS)]
            return Counter({(item, "add"): 1 for item in items})

        made = run_all([partial(change, list_id) for list_id, _ in lists])
        for (_, entry), expected in zip(lists, made, strict=True):
            wait_until(
                partial(arrived, env, entry, expected),
                timeout=90,
                what="every change through the storm",
            )
        env.drain()
        assert [env.changes_of(entry) for _, entry in lists] == made
        assert env.emulator.early_retries() == 0  # no request came back before its Retry-After
        assert env.emulator.calls("GetChanges") >= 8 + LISTS  # the storm was met, then the reads
