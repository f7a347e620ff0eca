"""One notification traced end to end: the intake's W3C trace reaches the worker's log line."""

from __future__ import annotations

import re
import secrets

import httpx

from tests.e2e.conftest import SITE
from tests.helpers import wait_until

TRACEPARENT = r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}"


def worker_line(traceparent: str) -> re.Pattern[str]:
    return re.compile(
        r"process_notifications: message \S+ \(id \S+, dequeue count \d+, "
        r"invocation (?P<invocation>[0-9a-f-]{36}), "
        rf"notification traceparent {traceparent}\): (?P<lists>\d+) list\(s\) synced, "
        r"(?P<written>\d+) change"
    )


def test_the_run_that_reads_a_change_logs_the_trace_of_the_notification_that_announced_it(
    api, emulator, new_list, stack
):
    subscription = api.create_subscription(SITE, new_list).json()
    host_log = stack.log_dir / "functions-host.log"
    already = len(host_log.read_text())
    emulator.add_item(SITE, new_list, "traced")  # SharePoint (the emulator) then notifies us

    def traced_run() -> re.Match[str] | None:
        text = host_log.read_text()[already:]
        for intake in re.finditer(
            rf"sharepoint_notifications: 1 accepted.*\(traceparent ({TRACEPARENT})\)", text
        ):
            run = worker_line(re.escape(intake.group(1))).search(text)
            if run and int(run.group("written")) == 1:
                return run
        return None

    run = wait_until(traced_run, timeout=60, what="the worker's line naming the intake's traceparent")
    assert f"Executed 'Functions.process_notifications' (Succeeded, Id={run.group('invocation')}" in (
        host_log.read_text()
    )
    assert len(api.changes(subscription["id"])) == 1


def test_the_host_continues_a_callers_traceparent_into_the_queue_message(api, emulator, new_list, stack):
    subscription = api.create_subscription(SITE, new_list).json()
    client_state = next(s["clientState"] for s in emulator.subscriptions() if s["id"] == subscription["id"])
    entry = {
        "subscriptionId": subscription["id"],
        "clientState": client_state,
        "expirationDateTime": subscription["expirationDateTime"],
        "resource": new_list,
        "siteUrl": SITE,
    }
    trace_id = secrets.token_hex(16)
    response = httpx.post(
        f"{stack.functions_url}/api/notifications/sharepoint",
        json={"value": [entry]},
        headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},  # a front door's, say
    )
    assert response.status_code == 202
    host_log = stack.log_dir / "functions-host.log"
    pattern = worker_line(rf"00-{trace_id}-[0-9a-f]{{16}}-01")
    run = wait_until(
        lambda: pattern.search(host_log.read_text()), timeout=60, what="the worker's traced line"
    )
    assert run.group("lists") == "1"
