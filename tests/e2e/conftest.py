"""End-to-end tests: only HTTP, through the local Functions host (every trigger enabled), the
SharePoint emulator and Azurite, as a client and SharePoint would see the service."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

from local.clients import EmulatorClient, FunctionsClient
from local.stack import DEFAULT_FUNCTION_KEY, DEFAULT_MASTER_KEY, Ports, Stack
from tests.helpers import wait_until

SITE = "/sites/e2e"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "no Chromium: `apt-get install chromium` (.ci/run does) to run the browser tests"
# Chromium as root in a sandbox, with no background traffic (this machine's network is closed).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
ALERT_RECEIVER = "health-alerts"


@pytest.fixture(scope="session")
def stack():
    ports = Ports.free()
    with Stack(
        ports=ports,
        delivery_interval=0.3,
        retry_interval=1.0,
        graph_slow_delay=5.0,  # a busy machine may answer Graph late; the tests wait seconds, not 10 min
        extra_settings={
            # host.json overrides, as app settings do in Azure: fast retries for the poison test
            "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00",
            "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.500",
            # Every list is due whenever a test runs the sweep (our clock does not move; the
            # emulator's does).
            "SWEEP_MAX_AGE_HOURS": "0",
            "GRAPH_SWEEP_MAX_AGE_HOURS": "0",
            # Connector retries in seconds, not minutes.
            "SINK_RETRY_BASE_SECONDS": "1",
            # Health alerts, as cards to a Teams workflow receiver of the emulator's.
            "ALERT_SINK_URL": f"http://127.0.0.1:{ports.emulator}/_receivers/teams-workflow/{ALERT_RECEIVER}",
            "ALERT_SINK_TYPE": "teams-workflow",
            "ALERT_AFTER_FAILED_READS": "3",
        },
    ) as running:
        yield running


@pytest.fixture
def emulator(stack):
    client = EmulatorClient(stack.emulator_url)
    yield client
    client.clear_faults()
    client.close()


@pytest.fixture
def api(stack):
    client = FunctionsClient(stack.functions_url, key=DEFAULT_FUNCTION_KEY, master_key=DEFAULT_MASTER_KEY)
    yield client
    client.close()


@pytest.fixture
def new_list(emulator) -> str:
    return emulator.create_list(SITE, f"list-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def sharepoint_clock(emulator):
    """The emulator's clock, put back to real time after the test (the stack is shared)."""
    yield emulator
    emulator.set_clock_offset(0)
    emulator.accept_expired_change_tokens(False)


def run_sweep(api, stack) -> None:
    host_log = stack.log_dir / "functions-host.log"
    runs = host_log.read_text().count("sweep_changes: ")
    assert api.run_function("sweep_changes").status_code == 202
    wait_until(lambda: host_log.read_text().count("sweep_changes: ") > runs, what="the sweep's run")


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Playwright for Python driving Debian's Chromium (Playwright's own download is out of reach)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def connect(page, key: str = DEFAULT_FUNCTION_KEY) -> None:
    page.get_by_label("Function key", exact=True).fill(key)
    page.get_by_role("button", name="Connect").click()
