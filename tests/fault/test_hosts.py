"""Instances: one killed in the middle of a batch, and two sharing one storage account."""

from __future__ import annotations

import threading
from collections import Counter
from functools import partial

from functions.core.checkpoints import CheckpointStore
from functions.core.sources.sharepoint import SHAREPOINT
from functions.core.sources.sharepoint.change_tokens import parse_change_token
from local.processes import free_port
from tests.fault.conftest import ACCEPTED, SHED, SITE, arrived, fault_stack, flood, make_changes, run_all
from tests.helpers import wait_until


def test_a_host_killed_mid_batch_loses_and_doubles_nothing_after_a_restart(tmp_path):
    with fault_stack(tmp_path, settings={"LOCAL_HOST_PROCESSING_LEASE_SECONDS": "5"}) as env:
        list_id, entry = env.subscribed_list()
        # SharePoint answers the read slowly, so the host dies while it waits for it.
        env.emulator.inject_fault("GetChanges", 200, delay_seconds=5, path_contains=list_id)
        reads = env.emulator.calls("GetChanges")
        items = [env.emulator.add_item(SITE, list_id, f"item {n}") for n in range(5)]
        wait_until(lambda: env.emulator.calls("GetChanges") > reads, timeout=30, what="the worker's read")
        env.stack.kill("functions-host")

        env.stack.start_host()
        expected = Counter({(item, "add"): 1 for item in items})
        wait_until(lambda: env.changes_of(entry) == expected, timeout=60, what="the changes, after")
        env.drain()
        assert env.changes_of(entry) == expected
        assert env.changes_written() == len(items)


def test_two_hosts_on_one_storage_write_every_change_once_and_never_move_a_checkpoint_back(tmp_path):
    with fault_stack(tmp_path) as env:
        port = free_port()
        second = env.stack.start_host(port=port)
        second_url = f"http://127.0.0.1:{port}"
        lists = [env.subscribed_list() for _ in range(2)]
        entries = [entry for _, entry in lists]
        checkpoints = CheckpointStore(env.storage)
        stop = threading.Event()
        went_back: list[str] = []

        def watch_checkpoints() -> int:
            seen: dict[str, int] = {}
            looks = 0
            while not stop.is_set():
                looks += 1
                for list_id, _ in lists:
                    checkpoint = checkpoints.read(list_id, SHAREPOINT)
                    number = parse_change_token(checkpoint.cursor).change_number if checkpoint else 0
                    if number < seen.get(list_id, 0):
                        went_back.append(f"{list_id}: {seen[list_id]} -> {number}")
                    seen[list_id] = max(number, seen.get(list_id, 0))
            return looks

        flooding = [partial(flood, url, entries, stop) for url in [env.stack.functions_url, second_url] * 8]
        changing = [partial(make_changes, env.stack.emulator_url, list_id, 30, 0.05) for list_id, _ in lists]

        def changes_then_stop() -> list[Counter]:
            try:
                made = run_all(changing)
                for (_, entry), expected in zip(lists, made, strict=True):
                    wait_until(
                        partial(arrived, env, entry, expected),
                        timeout=60,
                        what="every change",
                    )
                return made
            finally:
                stop.set()

        made, looks, *answers = run_all([changes_then_stop, watch_checkpoints, *flooding])
        assert set(sum(answers, Counter())) <= {ACCEPTED, SHED}  # a 503 only with Retry-After
        assert looks > 1 and not went_back, went_back
        env.drain()
        assert [env.changes_of(entry) for entry in entries] == made
        assert env.changes_written() == sum(m.total() for m in made)
        # Both instances took messages off the queue.
        for host in (env.stack.service("functions-host"), second):
            assert "process_notifications: message" in host.log_path.read_text()
