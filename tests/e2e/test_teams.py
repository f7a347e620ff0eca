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
from tests.e2e.conftest import run_sweep
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
    health = api.get_subscription(subscription["id"]).json()["health"]
    assert health["lastNotificationDateTime"] and health["state"] == "healthy"


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
    first = alice.post_channel_message(team, channel_id, "<p>never announced</p>")
    alice.post_channel_message(team, channel_id, "<p>a reply, never announced</p>", reply_to=first)
    emulator.withhold(subscription["id"], False)
    reads = emulator.calls("ChannelMessagesDelta")
    emulator.graph_lifecycle(subscription["id"], "missed")
    changes = changes_of(api, subscription["id"], 2)
    assert [c["fields"]["preview"] for c in changes] == ["never announced", "a reply, never announced"]
    assert changes[1]["fields"]["replyToId"] == first
    assert emulator.calls("ChannelMessagesDelta") > reads

    # The stored delta link expires: the next catch-up starts a new round from the last read.
    emulator.expire_delta_tokens()
    emulator.withhold(subscription["id"])
    alice.post_channel_message(team, channel_id, "<p>after the link expired</p>")
    emulator.withhold(subscription["id"], False)
    emulator.graph_lifecycle(subscription["id"], "missed")
    changes = changes_of(api, subscription["id"], 3)
    assert changes[-1]["fields"]["preview"] == "after the link expired"


def test_a_chat_flows_and_the_sweep_reads_back_what_was_never_announced(api, emulator, alice, stack):
    chat = alice.graph(
        "POST",
        "/chats",
        json={
            "chatType": "group",
            "topic": "Launch crew",
            "members": [
                {"user@odata.bind": f"https://graph.microsoft.com/v1.0/users('{who}')", "roles": ["owner"]}
                for who in (AUTHOR, "bob@contoso.com")
            ],
        },
    ).json()
    response = api.create_teams_subscription(f"/chats/{chat['id']}/messages")
    assert response.status_code == 201, response.text
    subscription = response.json()
    assert subscription["title"] == "Launch crew"
    say = alice.graph("POST", f"/chats/{chat['id']}/messages", json={"body": {"content": "lunch at noon?"}})
    assert say.status_code == 201, say.text
    [change] = changes_of(api, subscription["id"], 1)
    assert change["subject"] == "Alice in Launch crew: lunch at noon?"

    emulator.withhold(subscription["id"])
    alice.graph("POST", f"/chats/{chat['id']}/messages", json={"body": {"content": "make it one"}})
    listed = emulator.calls("ChatMessages")
    run_sweep(api, stack)
    assert emulator.calls("ChatMessages") > listed, "the sweep did not read the chat"
    changes = changes_of(api, subscription["id"], 2)
    assert changes[-1]["fields"]["preview"] == "make it one"
    emulator.withhold(subscription["id"], False)


def test_a_sink_ignoring_an_author_gets_everyone_elses_messages(api, emulator, alice, channel, stack):
    team, channel_id = channel
    subscription = subscribe(api, team, channel_id)
    alice_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"user:{AUTHOR}"))  # her Entra object id
    receiver = f"teams-{uuid.uuid4().hex[:8]}"
    url = emulator.receiver_url("teams-workflow", receiver)
    assert (
        api.add_sink(subscription["id"], "teams-workflow", url, ignoreChangesBy=[alice_id]).status_code == 201
    )
    bob = EmulatorClient(stack.emulator_url, user="bob@contoso.com")
    try:
        alice.post_channel_message(team, channel_id, "<p>from alice</p>")
        bob.post_channel_message(team, channel_id, "<p>from bob</p>")
    finally:
        bob.close()
    changes_of(api, subscription["id"], 2)
    [card] = wait_until(lambda: emulator.received("teams-workflow", receiver), what="bob's card")
    titles = fact_titles(json.loads(card["body"]))
    assert any("Bob in #General: from bob" in t for t in titles)
    assert not any("alice" in t for t in titles)


def test_a_renewal_keeps_the_subscription_on_the_current_certificate(api, emulator, channel):
    team, channel_id = channel
    subscription = subscribe(api, team, channel_id)
    before = next(s for s in emulator.graph_subscriptions() if s["id"] == subscription["id"])
    renewed = api.renew_subscription(subscription["id"])
    assert renewed.status_code == 200, renewed.text
    after = next(s for s in emulator.graph_subscriptions() if s["id"] == subscription["id"])
    assert after["encryptionCertificateId"] == before["encryptionCertificateId"]
    assert after["expirationDateTime"] >= before["expirationDateTime"]


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


def test_every_channel_of_the_tenant_and_its_catch_up_through_each_teams_messages(
    api, emulator, alice, channel, stack
):
    response = api.create_teams_subscription("/teams/getAllMessages")
    assert response.status_code == 201, response.text
    subscription = response.json()
    assert subscription["title"] == "every channel"
    again = api.create_teams_subscription("/teams/getAllMessages")
    assert again.status_code == 409  # Graph allows an app one; so does the service
    team, channel_id = channel
    alice.post_channel_message(team, channel_id, "<p>seen tenant-wide</p>")
    changes_of(api, subscription["id"], 1)

    emulator.withhold(subscription["id"])
    alice.post_channel_message(team, channel_id, "<p>read back tenant-wide</p>")
    listed = emulator.calls("TeamAllMessages")
    run_sweep(api, stack)
    assert emulator.calls("TeamAllMessages") > listed
    changes = changes_of(api, subscription["id"], 2)
    assert changes[-1]["fields"]["preview"] == "read back tenant-wide"
    emulator.withhold(subscription["id"], False)
    assert api.delete_subscription(subscription["id"]).status_code == 204
