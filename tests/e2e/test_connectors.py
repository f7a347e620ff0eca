"""Connectors, end to end: a change on a SharePoint list arrives as a valid Adaptive Card, a valid
MessageCard and a correctly signed webhook; failing and throttling sinks, redelivery, a removed
sink and a 410."""

from __future__ import annotations

import json
import uuid

from standardwebhooks.webhooks import Webhook

from tests.e2e.conftest import SITE
from tests.helpers import wait_until


def receiver(emulator, kind: str) -> tuple[str, str]:
    name = f"{kind}-{uuid.uuid4().hex[:8]}"
    return name, emulator.receiver_url(kind, name)


def arrivals(emulator, kind: str, name: str, count: int = 1, *, valid_only: bool = True) -> list[dict]:
    def found() -> list[dict] | None:
        got = [r for r in emulator.received(kind, name) if r.get("valid") or not valid_only]
        return got if len(got) >= count else None

    return wait_until(found, timeout=60, what=f"{count} arrival(s) at the {kind} receiver")


def test_one_change_reaches_teams_a_connector_and_a_signed_webhook(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    teams, teams_url = receiver(emulator, "teams-workflow")
    card, card_url = receiver(emulator, "message-card")
    hook, hook_url = receiver(emulator, "webhook")
    for sink_type, url in (("teams-workflow", teams_url), ("message-card", card_url)):
        assert api.add_sink(subscription["id"], sink_type, url).status_code == 201
    created = api.add_sink(subscription["id"], "webhook", hook_url)
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    emulator.receiver_secret(hook, secret)

    listed = api.sinks(subscription["id"])
    assert len(listed) == 3
    assert all("secret" not in s and s["url"].endswith(s["url"][-4:]) and "…" in s["url"] for s in listed)
    assert hook_url not in json.dumps(listed)

    item = emulator.add_item(SITE, new_list, "Ship <b>it</b> [now](https://evil.example)")

    [teams_arrival] = arrivals(emulator, "teams-workflow", teams)
    assert teams_arrival["problems"] == []  # schema-checked by the receiver
    message = json.loads(teams_arrival["body"])
    card_content = message["attachments"][0]["content"]
    assert card_content["version"] == "1.5"
    [fact] = card_content["body"][1]["facts"]
    assert fact["title"].startswith("add · item")
    assert f"ID={item}" in fact["value"]

    [card_arrival] = arrivals(emulator, "message-card", card)
    assert json.loads(card_arrival["body"])["@type"] == "MessageCard"

    [hook_arrival] = arrivals(emulator, "webhook", hook)
    verified = Webhook(secret).verify(hook_arrival["body"], hook_arrival["headers"])  # our own check too
    assert [c["itemId"] for c in verified["changes"]] == [item]
    assert hook_arrival["headers"]["webhook-id"] == verified["batchId"]

    def all_delivered() -> list[dict] | None:
        states = api.get_subscription(subscription["id"]).json()["health"]["sinkStates"]
        return states if all(s.get("lastDelivery") for s in states) else None

    states = wait_until(all_delivered, what="every sink's delivery in the subscription's health")
    assert sorted(s["type"] for s in states) == ["message-card", "teams-workflow", "webhook"]
    assert all(s["state"] == "active" and s["lastDelivery"]["status"] for s in states)


def test_a_failing_and_a_throttling_sink_still_get_the_change_and_block_no_one(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    failing, failing_url = receiver(emulator, "teams-workflow")
    throttled, throttled_url = receiver(emulator, "message-card")
    healthy, healthy_url = receiver(emulator, "teams-workflow")
    emulator.receiver_behaviour("teams-workflow", failing, status=500, times=2)
    emulator.receiver_behaviour("message-card", throttled, status=429, times=1, retryAfter=2)
    for sink_type, url in (
        ("teams-workflow", failing_url),
        ("message-card", throttled_url),
        ("teams-workflow", healthy_url),
    ):
        assert api.add_sink(subscription["id"], sink_type, url).status_code == 201

    emulator.add_item(SITE, new_list, "resilient")
    arrivals(emulator, "teams-workflow", healthy)
    arrivals(emulator, "teams-workflow", failing)  # after two 500s
    arrivals(emulator, "message-card", throttled)  # after a throttling answer inside a 200
    answers = [r["answered"] for r in emulator.received("teams-workflow", failing)]
    assert answers[:2] == [500, 500] and answers[-1] == 202


def test_a_batch_that_failed_for_good_is_kept_and_redelivered(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    name, url = receiver(emulator, "teams-workflow")
    emulator.receiver_behaviour("teams-workflow", name, status=503, times=6)  # every attempt (3 x 2 tries)
    sink = api.add_sink(subscription["id"], "teams-workflow", url).json()
    emulator.add_item(SITE, new_list, "will need a redelivery")
    wait_until(
        lambda: (
            next(s for s in api.sinks(subscription["id"]) if s["id"] == sink["id"])
            .get("lastDelivery", {})
            .get("status")
            == "failed"
        ),
        timeout=60,
        what="the batch to fail for good",
    )
    response = api.http.post(f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}/redeliver")
    assert (response.status_code, response.json()) == (202, {"requeued": 1})
    arrivals(emulator, "teams-workflow", name)


def test_a_removed_sink_receives_nothing_more_and_a_410_disables_a_webhook(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    removed, removed_url = receiver(emulator, "message-card")
    gone, gone_url = receiver(emulator, "webhook")
    sink = api.add_sink(subscription["id"], "message-card", removed_url).json()
    hook = api.add_sink(subscription["id"], "webhook", gone_url).json()
    emulator.receiver_secret(gone, hook["secret"])
    emulator.receiver_behaviour("webhook", gone, status=410, times=1)
    emulator.add_item(SITE, new_list, "first")
    arrivals(emulator, "message-card", removed)
    wait_until(
        lambda: (
            next(s for s in api.sinks(subscription["id"]) if s["id"] == hook["id"])["state"] == "disabled"
        ),
        what="the webhook sink disabled by its 410",
    )

    assert api.http.delete(f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}").status_code == 204
    before = len(emulator.received("message-card", removed)) + len(emulator.received("webhook", gone))
    emulator.add_item(SITE, new_list, "second")
    wait_until(lambda: len(api.changes(subscription["id"])) == 2, what="the second change in the log")
    emulator.deliver()
    after = len(emulator.received("message-card", removed)) + len(emulator.received("webhook", gone))
    assert after == before


def test_the_test_button_reports_what_the_endpoint_answered(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    name, url = receiver(emulator, "message-card")
    sink = api.add_sink(subscription["id"], "message-card", url).json()
    tested = api.http.post(f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}/test").json()
    assert tested == {"delivered": True, "endpointStatus": 200, "detail": "HTTP 200"}
    emulator.receiver_behaviour("message-card", name, status=429, times=1)
    tested = api.http.post(f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}/test").json()
    assert tested["delivered"] is False
    assert "429" in tested["detail"]


def test_sink_urls_are_checked_at_configuration(api, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    retired = api.add_sink(
        subscription["id"], "message-card", "https://contoso.webhook.office.com/webhookb2/x"
    )
    assert retired.status_code == 400
    assert "Teams workflow" in retired.json()["error"]["message"]
    assert api.add_sink(subscription["id"], "webhook", "http://example.com/hook").status_code == 400
    bad_secret = api.add_sink(
        subscription["id"], "webhook", "https://example.com/hook", secret="not-a-secret"
    )
    assert bad_secret.status_code == 400


def test_a_rotated_secret_signs_beside_the_old_one_so_receivers_can_switch_over(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    name, url = receiver(emulator, "webhook")
    created = api.add_sink(subscription["id"], "webhook", url).json()
    old_secret = created["secret"]
    emulator.receiver_secret(name, old_secret)  # the receiver still knows only the old secret
    rotated = api.http.post(f"/api/subscriptions/{subscription['id']}/sinks/{created['id']}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != old_secret
    assert "previousSecretValidUntil" in rotated.json()

    emulator.add_item(SITE, new_list, "signed twice")
    [arrival] = arrivals(emulator, "webhook", name)
    assert len(arrival["headers"]["webhook-signature"].split(" ")) == 2
    Webhook(new_secret).verify(arrival["body"], arrival["headers"])
    Webhook(old_secret).verify(arrival["body"], arrival["headers"])
    listed = json.dumps(api.sinks(subscription["id"]))
    assert old_secret not in listed
    assert new_secret not in listed
