"""Integration tests: the core, in this process, against real Azurite and the emulator over HTTP.

The local host runs too, serving only the HTTP functions (queue and timer triggers disabled with
`AzureWebJobs.<name>.Disabled`, as in Azure), so that SharePoint's validation calls and
notification deliveries reach the real intake. The tests drive the worker and renewal themselves.
"""

from __future__ import annotations

import uuid

import pytest

from functions.core.resources import NOTIFICATIONS_QUEUE
from functions.core.services import Services
from functions.core.settings import Settings
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from local.clients import EmulatorClient, FunctionsClient
from local.stack import DEFAULT_FUNCTION_KEY, Stack

SITE = "/sites/integration"


@pytest.fixture(scope="session")
def stack():
    with Stack(
        delivery_interval=3600,  # tests deliver explicitly with /_emulator/deliver
        extra_settings={
            "AzureWebJobs.process_notifications.Disabled": "true",
            "AzureWebJobs.renew_subscriptions.Disabled": "true",
            "AzureWebJobs.deliver_changes.Disabled": "true",
            "AzureWebJobs.catch_up_sinks.Disabled": "true",
        },
    ) as running:
        yield running


@pytest.fixture
def services(stack) -> Services:
    services = Services.from_settings(Settings.from_environ(stack.app_settings()))
    services.storage.queue(NOTIFICATIONS_QUEUE).clear_messages()
    return services


@pytest.fixture
def emulator(stack):
    client = EmulatorClient(stack.emulator_url)
    client.clear_faults()
    yield client
    client.clear_faults()
    client.close()


@pytest.fixture
def api(stack):
    client = FunctionsClient(stack.functions_url, key=DEFAULT_FUNCTION_KEY)
    yield client
    client.close()


@pytest.fixture
def new_list(emulator) -> str:
    return emulator.create_list(SITE, f"list-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def subscription(services, new_list):
    return services.subscriptions.create(CreateSubscriptionRequest(site_url=SITE, list_id=new_list))


class QueueDriver:
    """Takes what the intake put on the real queue and hands it to the worker, as the host would."""

    def __init__(self, services: Services) -> None:
        self.queue = services.storage.queue(NOTIFICATIONS_QUEUE)

    def take_all(self) -> list[str]:
        bodies = []
        for message in self.queue.receive_messages(max_messages=32, visibility_timeout=60):
            bodies.append(message.content)
            self.queue.delete_message(message)
        return bodies


@pytest.fixture
def queue(services) -> QueueDriver:
    return QueueDriver(services)
