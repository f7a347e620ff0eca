"""Storage stopped, and storage hung, while SharePoint delivers notifications."""

from __future__ import annotations

import os
import signal
import time

import httpx

from local.stack import Stack
from tests.fault.conftest import SITE, FaultStack, fault_stack
from tests.helpers import wait_until

# SharePoint gives up on a notification URL that has not answered within 5 seconds.
SHAREPOINT_TIMEOUT = 5.0


def intake_answer(stack: Stack, entry: dict[str, str]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        f"{stack.functions_url}/api/notifications/sharepoint", json={"value": [entry]}, timeout=30
    )
    return response, time.monotonic() - started


def assert_refused_in_time(env: FaultStack, entry: dict[str, str]) -> None:
    response, seconds = intake_answer(env.stack, entry)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"]
    assert seconds < SHAREPOINT_TIMEOUT, f"the intake answered after {seconds:.1f}s"


def change_meanwhile(env: FaultStack, list_id: str) -> int:
    """An item added while storage is out; SharePoint's delivery of it meets a 503 and is retried
    (every second here, five times)."""
    item = env.emulator.add_item(SITE, list_id, "while storage is out")
    wait_until(
        lambda: env.emulator.counters()["delivery"].get("failed", 0) > 0,
        timeout=10,
        what="a failed delivery",
    )
    return item


# A message whose delete met the outage comes back when its processing lease ends (10 minutes in
# Azure) and runs again: shortened here so that the second run happens, and is shown to change
# nothing, within the test.
SHORT_LEASE = {"LOCAL_HOST_PROCESSING_LEASE_SECONDS": "20"}


def test_storage_stopped_mid_intake_answers_503_and_loses_nothing(tmp_path):
    with fault_stack(tmp_path, persistent=True, settings=SHORT_LEASE) as env:
        list_id, entry = env.subscribed_list()
        before = env.emulator.add_item(SITE, list_id, "before the outage")
        wait_until(lambda: env.changes_of(entry), timeout=30, what="the change before the outage")

        env.stack.service("azurite").stop()
        env.stack.services.remove(env.stack.service("azurite"))
        assert_refused_in_time(env, entry)
        during = change_meanwhile(env, list_id)
        env.stack.start_azurite()

        expected = {(before, "add"): 1, (during, "add"): 1}
        wait_until(lambda: env.changes_of(entry) == expected, timeout=60, what="the change made meanwhile")
        env.drain()
        assert env.changes_of(entry) == expected


def test_storage_hung_mid_intake_answers_503_in_time_and_loses_nothing(tmp_path):
    with fault_stack(tmp_path, settings=SHORT_LEASE) as env:
        list_id, entry = env.subscribed_list()
        azurite = env.stack.service("azurite").process
        os.kill(azurite.pid, signal.SIGSTOP)
        try:
            assert_refused_in_time(env, entry)
            during = change_meanwhile(env, list_id)
        finally:
            os.kill(azurite.pid, signal.SIGCONT)

        expected = {(during, "add"): 1}
        wait_until(lambda: env.changes_of(entry) == expected, timeout=60, what="the change made meanwhile")
        env.drain()
        assert env.changes_of(entry) == expected
