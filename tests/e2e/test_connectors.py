"""Connectors, end to end: a change on a SharePoint list arrives as a valid Adaptive Card, a valid
MessageCard and a correctly signed webhook; failing and throttling sinks, redelivery, a removed
sink and a 410."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from standardwebhooks.webhooks import Webhook

from functions.core.resources import SINKS_TABLE
from functions.core.settings import StorageSettings
from functions.core.storage import Storage
from local.clients import EmulatorClient
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


def test_a_receiver_down_for_a_while_gets_every_change_in_order_once_it_is_back(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    name, url = receiver(emulator, "webhook")
    emulator.receiver_behaviour("webhook", name, status=503, times=4)
    sink = api.add_sink(subscription["id"], "webhook", url).json()
    emulator.receiver_secret(name, sink["secret"])
    items = [emulator.add_item(SITE, new_list, f"while down {n}") for n in range(3)]
    wait_until(
        lambda: (
            api.http.get(f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}")
            .json()
            .get("delivery", {})
            .get("failedAttempts")
        ),
        what="a failed attempt on the sink's view",
    )
    response = api.http.post(f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}/redeliver")
    assert response.status_code == 202

    def delivered_items() -> list | None:
        got = [
            change["itemId"]
            for arrival in emulator.received("webhook", name)
            if arrival.get("valid")
            for change in json.loads(arrival["body"])["changes"]
        ]
        return got if len(set(got)) == len(items) else None

    assert (
        sorted(set(wait_until(delivered_items, timeout=90, what="every change, once the receiver is back")))
        == items
    )
    view = api.http.get(f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}").json()
    assert view["delivery"]["lastDelivery"]["status"] == "delivered"


def test_a_removed_sink_receives_nothing_more_and_a_410_disables_until_enabled(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    removed, removed_url = receiver(emulator, "message-card")
    gone, gone_url = receiver(emulator, "webhook")
    sink = api.add_sink(subscription["id"], "message-card", removed_url).json()
    hook = api.add_sink(subscription["id"], "webhook", gone_url).json()
    emulator.receiver_secret(gone, hook["secret"])
    emulator.receiver_behaviour("webhook", gone, status=410, times=1)
    first = emulator.add_item(SITE, new_list, "first")
    arrivals(emulator, "message-card", removed)
    disabled = wait_until(
        lambda: next(
            (s for s in api.sinks(subscription["id"]) if s["id"] == hook["id"] and s["state"] == "disabled"),
            None,
        ),
        what="the webhook sink disabled by its 410",
    )
    assert disabled["disabledReason"] == "the receiver answered 410 Gone"

    assert api.http.delete(f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}").status_code == 204
    second = emulator.add_item(SITE, new_list, "second")
    wait_until(lambda: len(api.changes(subscription["id"])) == 2, what="the second change in the log")
    emulator.deliver()
    assert len(emulator.received("message-card", removed)) == 1
    assert [a for a in emulator.received("webhook", gone) if a.get("valid")] == []

    # Enabled again, it resumes where its cursor stopped: nothing made meanwhile is lost.
    enabled = api.http.post(f"/api/subscriptions/{subscription['id']}/sinks/{hook['id']}/enable")
    assert (enabled.status_code, enabled.json()["state"]) == (200, "active")
    # The batch it answered 410 to goes again under the same id, then what came after it.
    resumed = arrivals(emulator, "webhook", gone, 2)
    assert [c["itemId"] for a in resumed for c in json.loads(a["body"])["changes"]] == [first, second]


def test_the_test_button_reports_status_and_time_and_nothing_the_receiver_said(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    name, url = receiver(emulator, "webhook")
    sink = api.add_sink(subscription["id"], "webhook", url).json()
    emulator.receiver_secret(name, sink["secret"])
    test_url = f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}/test"
    tested = [api.http.post(test_url).json() for _ in range(2)]
    assert [(t["delivered"], t["endpointStatus"], t["detail"]) for t in tested] == [
        (True, 204, "HTTP 204")
    ] * 2
    assert all(isinstance(t["elapsedMs"], int) for t in tested)
    ids = [arrival["headers"]["webhook-id"] for arrival in emulator.received("webhook", name)]
    assert len(set(ids)) == 2  # a de-duplicating receiver keeps both tests

    emulator.receiver_behaviour("webhook", name, status=500, times=1)
    failed = api.http.post(test_url).json()
    assert (failed["delivered"], failed["endpointStatus"], failed["detail"]) == (False, 500, "HTTP 500")
    assert "injected" not in json.dumps(failed)  # the receiver's body is never handed back


def test_deleting_a_subscription_removes_its_sinks_so_a_new_one_starts_with_none(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    _, url = receiver(emulator, "webhook")
    assert api.add_sink(subscription["id"], "webhook", url).status_code == 201
    assert api.http.delete(f"/api/subscriptions/{subscription['id']}").status_code == 204
    again = api.create_subscription(SITE, new_list).json()
    assert api.sinks(again["id"]) == []


def test_a_workflow_that_requires_entra_gets_a_bearer_token(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    name, url = receiver(emulator, "teams-workflow")
    emulator.receiver_requires_token("teams-workflow", name)
    plain = api.add_sink(subscription["id"], "teams-workflow", url).json()
    tested = api.http.post(f"/api/subscriptions/{subscription['id']}/sinks/{plain['id']}/test").json()
    assert (tested["delivered"], tested["endpointStatus"]) == (False, 401)

    response = api.http.post(
        f"/api/subscriptions/{subscription['id']}/sinks",
        json={"type": "teams-workflow", "url": url, "auth": "entra"},
    )
    assert response.status_code == 201 and response.json()["auth"] == "entra"
    tested = api.http.post(
        f"/api/subscriptions/{subscription['id']}/sinks/{response.json()['id']}/test"
    ).json()
    assert (tested["delivered"], tested["endpointStatus"]) == (True, 202)


def test_a_replay_sends_a_range_again_under_new_message_ids(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    name, url = receiver(emulator, "webhook")
    sink = api.add_sink(subscription["id"], "webhook", url).json()
    emulator.receiver_secret(name, sink["secret"])
    items = [emulator.add_item(SITE, new_list, f"replayed {n}") for n in range(2)]
    wait_until(lambda: len(api.changes(subscription["id"])) == 2, what="both changes in the log")
    emulator.deliver()
    first = arrivals(emulator, "webhook", name)
    times = sorted(change["time"] for change in api.changes(subscription["id"]))
    replay_url = f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}/replay"
    response = api.http.post(replay_url, json={"since": times[0], "until": times[-1]})
    assert (response.status_code, response.json()) == (202, {"rows": 2})
    replayed = arrivals(emulator, "webhook", name, len(first) + 1)[-1]
    assert [c["itemId"] for c in json.loads(replayed["body"])["changes"]] == items
    assert replayed["headers"]["webhook-id"] not in {a["headers"]["webhook-id"] for a in first}
    bad = api.http.post(replay_url, json={"since": "yesterday"})
    assert bad.status_code == 400


def test_sink_urls_are_checked_at_configuration(api, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    retired = api.add_sink(
        subscription["id"], "message-card", "https://contoso.webhook.office.com/webhookb2/x"
    )
    assert retired.status_code == 400
    assert "Teams workflow" in retired.json()["error"]["message"]
    for internal in (
        "http://example.com/hook",
        "https://169.254.169.254/metadata",
        "https://[::ffff:127.0.0.1]/x",
        "https://2130706433/x",
        "https://10.0.0.1/x",
        "http://127.0.0.2:7072/x",
    ):
        assert api.add_sink(subscription["id"], "webhook", internal).status_code == 400, internal
    bad_secret = api.add_sink(
        subscription["id"], "webhook", "https://example.com/hook", secret="not-a-secret"
    )
    assert bad_secret.status_code == 400
    moved = api.add_sink(
        subscription["id"],
        "teams-workflow",
        "https://prod-1.westus.logic.azure.com/workflows/1/triggers?sig=x",
    )
    assert moved.status_code == 201 and "environment.api.powerplatform.com" in moved.json()["warning"]
    assert "sig=" not in json.dumps(moved.json())
    current = api.add_sink(
        subscription["id"],
        "teams-workflow",
        "https://default1.environment.api.powerplatform.com:443/powerautomate/automations/direct/workflows/1"
        "/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=abc",
    )
    assert current.status_code == 201 and "warning" not in current.json()


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


def test_each_sink_operation_leaves_one_audit_line_with_the_url_masked(api, emulator, new_list, stack):
    subscription = api.create_subscription(SITE, new_list).json()
    _, url = receiver(emulator, "webhook")
    url += "?token=NEVERLOGGED"
    log = stack.service("functions-host").log_path
    sink = api.add_sink(subscription["id"], "webhook", url).json()
    base = f"/api/subscriptions/{subscription['id']}/sinks/{sink['id']}"
    for action in ("test", "rotate-secret", "disable", "enable"):
        assert api.http.post(f"{base}/{action}").status_code == 200, action
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert api.http.post(f"{base}/replay", json={"since": since}).status_code == 202
    assert api.http.delete(base).status_code == 204

    def audit_lines() -> list[str] | None:
        lines = [
            line
            for line in log.read_text().splitlines()
            if f"sink {sink['id']}" in line and "sink audit" in line
        ]
        return lines if len(lines) == 7 else None

    lines = wait_until(audit_lines, what="seven audit lines")
    assert [line.split("sink audit: ")[1].split(" ")[0] for line in lines] == [
        "create", "test", "rotate", "disable", "enable", "replay", "delete",
    ]  # fmt: skip
    assert all("invocation " in line and ": ok" in line for line in lines)
    assert "NEVERLOGGED" not in log.read_text()


def test_a_rotation_and_a_delete_made_while_a_receiver_holds_a_delivery_open_stay_done(
    api, emulator, new_list, stack
):
    subscription = api.create_subscription(SITE, new_list).json()
    rotated_name, rotated_url = receiver(emulator, "webhook")
    deleted_name, deleted_url = receiver(emulator, "webhook")
    rotated = api.add_sink(subscription["id"], "webhook", rotated_url).json()
    deleted = api.add_sink(subscription["id"], "webhook", deleted_url).json()
    for name, sink in ((rotated_name, rotated), (deleted_name, deleted)):
        emulator.receiver_secret(name, sink["secret"])
        emulator.receiver_behaviour("webhook", name, status=204, times=1, delaySeconds=8)
    emulator.add_item(SITE, new_list, "held open")
    base = f"/api/subscriptions/{subscription['id']}/sinks"
    wait_until(
        lambda: all(
            api.http.get(f"{base}/{s['id']}").json()["delivery"]["inProgress"] for s in (rotated, deleted)
        ),
        what="both deliveries held open by their receivers",
    )
    new_secret = api.http.post(f"{base}/{rotated['id']}/rotate-secret").json()["secret"]
    assert api.http.delete(f"{base}/{deleted['id']}").status_code == 204

    emulator.receiver_secret(rotated_name, new_secret)
    emulator.add_item(SITE, new_list, "after the rotation")
    wait_until(
        lambda: api.http.get(f"{base}/{rotated['id']}").json()["delivery"]["batchesDelivered"] >= 2,
        timeout=60,
        what="both changes delivered to the rotated sink",
    )
    last = emulator.received("webhook", rotated_name)[-1]
    Webhook(new_secret).verify(last["body"], last["headers"])  # the rotation was not undone
    assert api.http.get(f"{base}/{deleted['id']}").status_code == 404  # the delete was not undone
    assert [s["id"] for s in api.sinks(subscription["id"])] == [rotated["id"]]

    table = Storage(StorageSettings(connection_string=stack.connection_string)).table(SINKS_TABLE)
    stored = repr([dict(e) for e in table.list_entities()])
    assert new_secret not in stored and rotated["secret"] not in stored


def test_a_subscription_leaves_out_whom_it_ignores_for_every_sink_changed_in_place(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list).json()
    hook, hook_url = receiver(emulator, "webhook")
    created = api.add_sink(subscription["id"], "webhook", hook_url)
    emulator.receiver_secret(hook, created.json()["secret"])
    first = emulator.add_item(SITE, new_list, "sent")
    arrivals(emulator, "webhook", hook)
    [row] = api.changes(subscription["id"])
    app_id = row["changedBy"].split("|")[-1].split("@")[0]  # the emulator's callers write app-only

    def patch(names: list[str]) -> dict:
        answer = api.http.patch(f"/api/subscriptions/{subscription['id']}", json={"ignoreChangesBy": names})
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert patch([app_id])["ignoreChangesBy"] == [app_id]
    ignored = emulator.add_item(SITE, new_list, "left out")
    wait_until(lambda: len(api.changes(subscription["id"])) == 2, what="the ignored change in the log")
    # The list applies when a row is delivered: wait until the sink has passed the ignored one.
    wait_until(
        lambda: api.sinks(subscription["id"])[0]["delivery"]["owedRows"] == 0,
        what="the sink's cursor past the ignored row",
    )
    assert "ignoreChangesBy" not in patch([])
    last = emulator.add_item(SITE, new_list, "sent again")
    got = arrivals(emulator, "webhook", hook, 2)
    items = [c["itemId"] for a in got for c in json.loads(a["body"])["changes"]]
    assert items == [first, last] and ignored not in items
    bad = api.http.patch(f"/api/subscriptions/{subscription['id']}", json={"listId": new_list})
    assert bad.status_code == 400 and "Traceback" not in bad.text


def test_a_users_write_the_change_log_does_not_name_is_named_by_the_item_and_left_out(
    api, emulator, stack, new_list
):
    """SharePoint often leaves the change's Editor empty: a subscription that follows fields reads
    the item's Editor with them, so a sink can still leave out Ann's own writes."""
    ann = EmulatorClient(stack.emulator_url, user="ann@contoso.com")
    subscription = api.create_subscription(SITE, new_list, fields=["Title"]).json()
    hook, hook_url = receiver(emulator, "webhook")
    created = api.add_sink(subscription["id"], "webhook", hook_url, ignoreChangesBy=["Ann@contoso.com"])
    emulator.receiver_secret(hook, created.json()["secret"])
    emulator.omit_change_editors(True)
    try:
        hers = ann.add_item(SITE, new_list, "Ann's own")
        wait_until(lambda: api.changes(subscription["id"]), what="Ann's change in the log")
        others = emulator.add_item(SITE, new_list, "the emulator's app")
        wait_until(lambda: len(api.changes(subscription["id"])) == 2, what="both changes")
        first, second = api.changes(subscription["id"])
    finally:
        emulator.omit_change_editors(False)
        ann.close()
    assert (first["itemId"], first["changedBy"], first["changedBySource"]) == (
        hers,
        "ann@contoso.com",
        "item",
    )
    assert second["changedBy"] == "i:0i.t|00000003-0000-0ff1-ce00-000000000000|app@sharepoint"
    [arrival] = arrivals(emulator, "webhook", hook)
    assert [c["itemId"] for c in json.loads(arrival["body"])["changes"]] == [others]
