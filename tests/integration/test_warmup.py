"""The warmup: what it makes before the instance takes traffic is what the first notification
then does not wait for (connections to the queue, the subscriptions it looks up)."""

from __future__ import annotations

from functions.core.resources import NOTIFICATIONS_QUEUE
from functions.core.services import Services
from functions.core.settings import Settings
from functions.core.sources.sharepoint.models import CreateSubscriptionRequest
from tests.integration.conftest import SITE


def test_a_warmed_instance_finds_its_subscriptions_and_queue_connections_ready(stack, emulator, new_list):
    created = Services.from_settings(Settings.from_environ(stack.app_settings())).subscriptions.create(
        CreateSubscriptionRequest(site_url=SITE, list_id=new_list)
    )
    cold = Services.from_settings(Settings.from_environ(stack.app_settings()))
    cold.warm()
    lookup = cold.subscription_lookups[created.source].lookup([created.id], max_reads=0)
    assert created.id in lookup.found and lookup.reads == 0  # no storage read on the first notification
    putter = cold.intake_storage.putter(NOTIFICATIONS_QUEUE)
    assert putter is not None and putter.idle_connections == 2  # connections opened ahead
    putter.close()
