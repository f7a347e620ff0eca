"""Teams channel messages end to end: subscribed with rich notifications, each message posted in
the emulator arrives encrypted and signed, is verified and decrypted by the service with no Graph
call, and reaches a Teams workflow sink as a card with its preview; spoiled notifications are
refused whole; a missed notification is recovered by the channel's messages delta."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from local.clients import EmulatorClient
from tests.helpers import wait_until

AUTHOR = "alice@contoso.com"


@pytest.fixture
def alice(stack):
    client = EmulatorClient(stack.emulator_url, user=AUTHOR)
    yield client
    client.close()


@pytest.fixture
def channel(emulator) -> tuple[str, str]:
    team = emulator.create_team(f"team-{uuid.uuid4().hex[:6]}", ["General"])
    return team["id"], team["channels"]["General"]


def fact_titles(document: object) -> list[str]:
    """Every fact title of a card, as Teams renders its Markdown (escapes dropped)."""
    if isinstance(document, dict):
        own = [re.sub(r"\\(.)", r"\1", document["title"])] if isinstance(document.get("title"), str) else []
        return own + [title for value in document.values() for title in fact_titles(value)]
    if isinstance(document, list):
        return [title for value in document for title in fact_titles(value)]
    return []


def subscribe(api, team: str, channel: str) -> dict:
    response = api.create_teams_subscription(f"/teams/{team}/channels/{channel}/messages")
    assert response.status_code == 201, response.text
    return response.json()


def changes_of(api, subscription_id: str, count: int) -> list[dict]:
    return wait_until(
        lambda: (found := api.changes(subscription_id)) and len(found) >= count and found,
        timeout=60,
        what=f"{count} Teams change(s)",
    )


def test_a_channel_message_reaches_a_teams_workflow_card_with_no_graph_read(api, emulator, alice, channel):
    team, channel_id = channel
    subscription = subscribe(api, team, channel_id)
    assert subscription["title"] == "#General"
    [remote] = [s for s in emulator.graph_subscriptions() if s["id"] == subscription["id"]]
    assert remote["includeResourceData"] is True
    assert remote["encryptionCertificateId"].startswith("m365-webhooks-")
    assert remote["lifecycleNotificationUrl"].endswith("/api/notifications/teams/lifecycle")
    receiver = f"teams-{uuid.uuid4().hex[:8]}"
    sink = api.add_sink(
        subscription["id"], "teams-workflow", emulator.receiver_url("teams-workflow", receiver)
    )
    assert sink.status_code == 201, sink.text
    reads_before = {
        op: emulator.calls(op) for op in ("ChannelMessagesDelta", "GetChannelMessage", "TeamAllMessages")
    }

    message = alice.post_channel_message(team, channel_id, "<p>Ship it <b>today</b> &amp; tell QA</p>")
    [change] = changes_of(api, subscription["id"], 1)
    assert (change["changeType"], change["itemId"]) == ("add", message)
    assert change["subject"] == "Alice in #General: Ship it today & tell QA"
    assert change["fields"]["preview"] == "Ship it today & tell QA"
    assert change["changedByKind"] == "user"

    [card] = wait_until(lambda: emulator.received("teams-workflow", receiver), what="the card")
    assert card["valid"], card["problems"]
    assert "add · Alice in #General: Ship it today & tell QA" in fact_titles(json.loads(card["body"]))

    alice.edit_channel_message(team, channel_id, message, "<p>Ship it tomorrow</p>")
    alice.delete_channel_message(team, channel_id, message)
    changes = changes_of(api, subscription["id"], 3)
    assert [c["changeType"] for c in changes] == ["add", "update", "delete"]
    assert "preview" not in changes[-1]["fields"]
    # The notifications were the changes: the service never read a message back from Graph.
    assert {op: emulator.calls(op) for op in reads_before} == reads_before


@pytest.mark.parametrize(
    "fault", ["flipData", "wrongAudience", "expiredToken", "noTokens", "unknownCertificate", "twoTenants"]
)
def test_a_spoiled_rich_notification_writes_nothing_and_the_next_one_flows(
    api, emulator, alice, channel, stack, fault
):
    team, channel_id = channel
    subscription = subscribe(api, team, channel_id)
    emulator.spoil_rich_notifications(fault)
    delivered = emulator.counters()["delivery"].get("graphDelivered", 0)
    alice.post_channel_message(team, channel_id, "<p>spoiled</p>")
    # Answered 2xx (Graph would retry anything else), in a POST of its own.
    wait_until(
        lambda: emulator.counters()["delivery"].get("graphDelivered", 0) > delivered, what="the spoiled POST"
    )
    alice.post_channel_message(team, channel_id, "<p>clean</p>")
    changes = changes_of(api, subscription["id"], 1)
    assert [c["fields"]["preview"] for c in changes] == ["clean"]
    log = (stack.log_dir / "functions-host.log").read_text()
    assert "spoiled" not in log  # refused, and logged without its content


def test_a_missed_notification_is_read_back_with_the_channels_delta(api, emulator, alice, channel):
    team, channel_id = channel
    subscription = subscribe(api, team, channel_id)
    emulator.withhold(subscription["id"])  # Graph drops what it should have sent
    alice.post_channel_message(team, channel_id, "<p>never announced</p>")
    emulator.withhold(subscription["id"], False)
    emulator.graph_lifecycle(subscription["id"], "missed")
    [change] = changes_of(api, subscription["id"], 1)
    assert change["fields"]["preview"] == "never announced"
    assert emulator.calls("ChannelMessagesDelta") >= 2  # the first cursor, then the catch-up read


def test_graph_refuses_a_subscription_the_app_has_no_permission_for(api, emulator, channel):
    team, channel_id = channel
    emulator.grant_app_roles([])
    try:
        response = api.create_teams_subscription(f"/teams/{team}/channels/{channel_id}/messages")
        tenant_wide = api.create_teams_subscription("/chats/getAllMessages")
    finally:
        emulator.grant_app_roles(["ChannelMessage.Read.All", "Chat.Read.All"])
    # As every refusal from upstream: 502, with Graph's status, code and words.
    error = response.json()["error"]
    assert (response.status_code, error["upstreamStatus"], error["upstreamCode"]) == (
        502,
        403,
        "ExtensionError",
    )
    assert "'ChannelMessage.Read.All,ChannelMessage.ReadWrite.All') is missing" in error["message"]
    assert tenant_wide.json()["error"]["upstreamStatus"] == 403 and "Chat.Read.All" in tenant_wide.text
