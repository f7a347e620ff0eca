"""Health alerts through the local host: cards to the deployment's Teams workflow (the emulator's
receiver checks each against the Adaptive Card schema), when a condition starts and when it ends."""

from __future__ import annotations

import json

from tests.e2e.conftest import ALERT_RECEIVER, SITE
from tests.helpers import wait_until


def alert_cards(emulator) -> list[dict]:
    arrivals = emulator.received("teams-workflow", ALERT_RECEIVER)
    assert all(arrival["valid"] for arrival in arrivals), [a.get("problems") for a in arrivals]
    return [json.loads(arrival["body"]) for arrival in arrivals]


def said(card: dict) -> str:
    return card["attachments"][0]["content"]["body"][0]["text"]


def alerts_about(emulator, subscription_id: str) -> list[str]:
    return [said(card) for card in alert_cards(emulator) if subscription_id in said(card)]


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
