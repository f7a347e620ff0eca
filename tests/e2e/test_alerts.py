"""Health alerts through the local host: cards to the deployment's Teams workflow (the emulator's
receiver checks each against the Adaptive Card schema), when a condition starts and when it ends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from local.clients import EmulatorClient, FunctionsClient
from local.stack import DEFAULT_FUNCTION_KEY, DEFAULT_MASTER_KEY, Ports, Stack
from tests.e2e.conftest import ALERT_RECEIVER, SITE, run_sweep
from tests.helpers import wait_until


def alert_cards(emulator) -> list[dict]:
    """The alerts the workflow took. An arrival it throttled (429: the receiver counts every
    Teams request of the stack to this URL) was not delivered, and the sender sends it again."""
    arrivals = emulator.received("teams-workflow", ALERT_RECEIVER)
    delivered = [arrival for arrival in arrivals if arrival["answered"] != 429]
    assert all(arrival["valid"] for arrival in delivered), [a.get("problems") for a in delivered]
    return [json.loads(arrival["body"]) for arrival in delivered]


def said(card: dict) -> str:
    return card["attachments"][0]["content"]["body"][0]["text"]


def alerts_about(emulator, subscription_id: str) -> list[str]:
    return [said(card) for card in alert_cards(emulator) if subscription_id in said(card)]


def said_twice(emulator, subscription_id: str) -> list[str] | None:
    found = alerts_about(emulator, subscription_id)
    return found if len(found) == 2 else None


def test_reads_failing_three_times_in_a_row_are_alerted_and_the_read_that_works_too(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    # Three refusals: the host retries the message, the fourth attempt reads.
    emulator.inject_fault("GetChanges", 400, times=3, path_contains=new_list)
    emulator.add_item(SITE, new_list, "read at the fourth attempt")
    cards = wait_until(lambda: said_twice(emulator, subscription["id"]), timeout=90, what="both alerts")
    assert cards == [
        f"Subscription {subscription['id']} fails to read its changes",
        f"Subscription {subscription['id']} reads its changes again",
    ]
    assert len(api.changes(subscription["id"])) == 1


def test_a_renewal_that_fails_is_alerted_and_the_next_that_works_too(api, emulator, new_list):
    expires = (datetime.now(UTC) + timedelta(days=3)).isoformat()  # due: inside the renewal window
    subscription = api.create_subscription(SITE, new_list, expirationDateTime=expires).json()
    emulator.inject_fault("UpdateSubscription", 400, times=1, path_contains=subscription["id"])
    assert api.run_function("renew_subscriptions").status_code == 202
    cards = wait_until(lambda: alerts_about(emulator, subscription["id"]), what="the alert card")
    assert cards == [f"Subscription {subscription['id']} failed to renew"]

    assert api.run_function("renew_subscriptions").status_code == 202
    cards = wait_until(lambda: said_twice(emulator, subscription["id"]), what="the recovery")
    assert cards[1] == f"Subscription {subscription['id']} renewed again"
    assert api.get_subscription(subscription["id"]).json()["expirationDateTime"] > expires[:19]


def test_a_disabled_connector_and_its_return_are_alerted(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    hook = emulator.receiver_url("webhook", "alerted")
    sink = api.add_sink(subscription["id"], "webhook", hook).json()
    sink_path = f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}"
    assert api.http.post(f"{sink_path}/disable").status_code == 200
    cards = wait_until(lambda: alerts_about(emulator, subscription["id"]), what="the alert card")
    assert cards == [f"Subscription {subscription['id']} lost a connector: it was disabled"]
    [alert] = api.http.get(f"/api/subscriptions/{subscription['id']}/alerts").json()["value"]
    assert (alert["condition"], alert["raised"], alert["undelivered"]) == ("sinkDisabled", True, False)

    assert api.http.post(f"{sink_path}/enable").status_code == 200

    def both() -> list[str] | None:
        found = alerts_about(emulator, subscription["id"])
        return found if len(found) == 2 else None

    cards = wait_until(both, what="the recovery")
    assert cards[1] == f"Subscription {subscription['id']} has its connector back"


def test_a_subscription_the_source_forgot_is_recreated_and_alerted(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    emulator.drop_subscription(subscription["id"])  # SharePoint no longer has it: the renewal sees 404
    renewed = api.renew_subscription(subscription["id"]).json()
    assert renewed["id"] != subscription["id"]
    cards = wait_until(lambda: alerts_about(emulator, renewed["id"]), what="the alert card")
    assert cards == [f"Subscription {renewed['id']} was recreated: the source had forgotten it"]


SILENT_AFTER_SECONDS = 18


@pytest.fixture(scope="module")
def quick_to_silence() -> Iterator[tuple[Stack, FunctionsClient, EmulatorClient]]:
    """A stack of its own, where a subscription is silent after 18 s without a notification (the
    shared one keeps the default day, which its `late` tests rely on)."""
    ports = Ports.free()
    with Stack(
        ports=ports,
        delivery_interval=0.3,
        extra_settings={
            "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.500",
            "SWEEP_MAX_AGE_HOURS": "0",
            "SILENT_AFTER_HOURS": str(SILENT_AFTER_SECONDS / 3600),
            "ALERT_SINK_URL": f"http://127.0.0.1:{ports.emulator}/_receivers/teams-workflow/{ALERT_RECEIVER}",
            "ALERT_SINK_TYPE": "teams-workflow",
        },
    ) as stack:
        api = FunctionsClient(stack.functions_url, key=DEFAULT_FUNCTION_KEY, master_key=DEFAULT_MASTER_KEY)
        emulator = EmulatorClient(stack.emulator_url)
        try:
            yield stack, api, emulator
        finally:
            api.close()
            emulator.close()


def test_a_subscription_gone_silent_is_alerted_and_its_next_notification_ends_it(quick_to_silence):
    stack, api, emulator = quick_to_silence
    new_list = emulator.create_list(SITE, "silent")
    subscription = api.create_subscription(SITE, new_list).json()
    emulator.withhold(subscription["id"])  # the source stops notifying this subscription
    emulator.set_clock_offset(-3600)
    emulator.add_item(SITE, new_list, "made an hour ago, never announced")
    emulator.set_clock_offset(0)

    def swept_until_silent() -> list[str]:
        run_sweep(api, stack)  # the first finds the gap; one past 18 s without a notification, silence
        return alerts_about(emulator, subscription["id"])

    cards = wait_until(swept_until_silent, timeout=120, what="the silence alert")
    assert cards == [f"Subscription {subscription['id']} is silent: changes come with no notification"]
    row = api.get_subscription(subscription["id"]).json()
    assert row["healthSummary"]["state"] == row["health"]["state"] == "silent"

    emulator.withhold(subscription["id"], False)
    emulator.add_item(SITE, new_list, "announced")  # its notification ends the silence at once
    cards = wait_until(lambda: said_twice(emulator, subscription["id"]), timeout=60, what="the recovery")
    assert cards[1] == f"Subscription {subscription['id']} hears notifications again"
    # late, or healthy once 18 s have passed since the gap: silent no more either way
    assert api.get_subscription(subscription["id"]).json()["healthSummary"]["state"] != "silent"
