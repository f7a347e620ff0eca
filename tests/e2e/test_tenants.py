"""Many tenants, end to end: a stack with TENANCY=multi, whose credential in every guest tenant is
the multi-tenant app with the emulator's managed identity as its federated credential.

An administrator consents through the emulator's admin-consent endpoint (the callback refuses a
replayed or forged state); two tenants with the same list GUID and the same mailbox path each see
only their own changes; a notification carrying another tenant's subscription is refused; a
tenant whose consent is revoked stops, with one alert, while the other flows; a throttled tenant
holds only itself; a removed tenant leaves nothing behind; a single-tenant deployment upgrades in
place."""

from __future__ import annotations

import contextlib
import json
import uuid
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from local.clients import EmulatorClient, FunctionsClient
from local.stack import DEFAULT_FUNCTION_KEY, DEFAULT_MASTER_KEY, Ports, Stack
from tests.e2e.conftest import CHROMIUM, NO_CHROMIUM, connect, run_sweep
from tests.helpers import wait_until

SITE = "/sites/shared"
ALERTS = "tenant-alerts"


@pytest.fixture(scope="module")
def multi():
    ports = Ports.free()
    with Stack(
        ports=ports,
        tenancy="multi",
        delivery_interval=0.3,
        retry_interval=1.0,
        graph_slow_delay=5.0,
        extra_settings={
            "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.500",
            "SWEEP_MAX_AGE_HOURS": "0",
            "GRAPH_SWEEP_MAX_AGE_HOURS": "0",
            "ALERT_SINK_URL": f"http://127.0.0.1:{ports.emulator}/_receivers/teams-workflow/{ALERTS}",
            "ALERT_SINK_TYPE": "teams-workflow",
        },
    ) as running:
        yield running


@pytest.fixture
def home(multi):
    client = EmulatorClient(multi.emulator_url)
    yield client
    client.clear_faults()
    client.close()


@pytest.fixture
def api(multi):
    client = FunctionsClient(multi.functions_url, key=DEFAULT_FUNCTION_KEY, master_key=DEFAULT_MASTER_KEY)
    yield client
    client.close()


def consent(api, home, name: str) -> tuple[str, EmulatorClient]:
    """A guest tenant, onboarded and consented through the admin-consent endpoint."""
    added = home.add_tenant(name)
    onboarded = api.onboard_tenant(added["id"], name, added["sharePointUrl"])
    assert onboarded.status_code == 201, onboarded.text
    assert onboarded.json()["state"] == "pending"
    callback = follow_consent(onboarded.json()["consentUrl"])
    answered = httpx.get(callback)  # anonymous, as the administrator's browser comes back
    assert answered.status_code == 200, answered.text
    assert answered.json()["state"] == "active"
    return added["id"], home.in_tenant(added["id"])


def follow_consent(consent_url: str) -> str:
    """The administrator at the identity platform: where the browser is sent back to."""
    answer = httpx.get(consent_url, follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def changes_of(api, subscription_id: str, count: int) -> list[dict]:
    return wait_until(
        lambda: (found := api.changes(subscription_id)) and len(found) >= count and found,
        timeout=60,
        what=f"{count} change(s) of {subscription_id}",
    )


def titles(changes: list[dict]) -> set[str]:
    return {c.get("subject") or c.get("fields", {}).get("Title") or "" for c in changes}


def subscribe_list(api, site_url: str, list_id: str, tenant_id: str | None) -> dict:
    extra = {"tenantId": tenant_id} if tenant_id else {}
    created = api.create_subscription(site_url, list_id, fields=["Title"], **extra)
    assert created.status_code == 201, created.text
    return created.json()


def test_consent_makes_a_tenant_active_and_its_answer_counts_once(api, home, multi):
    added = home.add_tenant("Northwind")
    onboarded = api.onboard_tenant(added["id"], "Northwind", added["sharePointUrl"]).json()
    url = urlsplit(onboarded["consentUrl"])
    assert url.path == f"/{added['id']}/v2.0/adminconsent"
    assert parse_qs(url.query)["redirect_uri"] == [f"{multi.functions_url}/api/consent"]
    callback = follow_consent(onboarded["consentUrl"])
    query = parse_qs(urlsplit(callback).query)
    assert query["admin_consent"] == ["True"] and query["tenant"] == [added["id"]]

    state = query["state"][0]
    forged = {**{k: v[0] for k, v in query.items()}, "state": state[:-6] + "AAAAAA"}
    refused = httpx.get(f"{multi.functions_url}/api/consent?{urlencode(forged)}")
    assert refused.status_code == 400 and "not one this service issued" in refused.text
    extra = httpx.get(callback + "&code=stolen")
    assert extra.status_code == 400

    assert httpx.get(callback).json()["state"] == "active"
    replayed = httpx.get(callback)
    assert replayed.status_code == 400 and "already used" in replayed.text
    listed = {tenant["id"]: tenant["state"] for tenant in api.tenants()}
    assert listed[added["id"]] == "active" and listed[multi.home_tenant_id] == "active"


def test_a_declined_consent_leaves_the_tenant_pending_with_the_reason(api, home):
    added = home.add_tenant("Declines")
    home.in_tenant(added["id"]).admin_answers("deny")
    onboarded = api.onboard_tenant(added["id"], "Declines", added["sharePointUrl"]).json()
    answered = httpx.get(follow_consent(onboarded["consentUrl"])).json()
    assert answered["state"] == "pending" and "AADSTS65004" in answered["error"]
    refused = api.create_subscription(SITE, str(uuid.uuid4()), tenantId=added["id"])
    assert refused.status_code == 409 and "pending" in refused.text


def test_the_same_list_guid_and_mailbox_in_two_tenants_never_meet(api, home, multi):
    guest_id, guest = consent(api, home, "Fabrikam")
    list_id = home.create_list(SITE, f"migrated-{uuid.uuid4().hex[:6]}")
    guest.create_list_with_id(SITE, "migrated", list_id)
    mine = subscribe_list(api, SITE, list_id, None)
    theirs = subscribe_list(api, SITE, list_id, guest_id)
    assert mine["tenantId"] == multi.home_tenant_id and theirs["tenantId"] == guest_id
    assert mine["listId"] == theirs["listId"] == list_id

    mailbox = f"/users/shared-{uuid.uuid4().hex[:6]}@example.com/mailFolders('inbox')/messages"
    user = mailbox.split("/")[2]
    my_mail = api.http.post(
        "/api/subscriptions", json={"source": "graph", "resource": mailbox, "changeType": "created"}
    )
    their_mail = api.http.post(
        "/api/subscriptions",
        json={"source": "graph", "resource": mailbox, "changeType": "created", "tenantId": guest_id},
    )
    assert my_mail.status_code == 201 and their_mail.status_code == 201, (my_mail.text, their_mail.text)

    home.add_item(SITE, list_id, "home item")
    guest.add_item(SITE, list_id, "guest item")
    home.send_to_folder(user, "inbox", "home mail")
    guest.send_to_folder(user, "inbox", "guest mail")
    assert titles(changes_of(api, mine["id"], 1)) == {"home item"}
    assert titles(changes_of(api, theirs["id"], 1)) == {"guest item"}
    assert titles(changes_of(api, my_mail.json()["id"], 1)) == {"home mail"}
    assert titles(changes_of(api, their_mail.json()["id"], 1)) == {"guest mail"}

    only_guest = api.list_subscriptions(tenantId=guest_id).json()["value"]
    assert {s["id"] for s in only_guest} == {theirs["id"], their_mail.json()["id"]}


def test_a_guests_teams_messages_arrive_signed_for_the_multi_tenant_app(api, home, multi):
    guest_id, guest = consent(api, home, "Teams Guest")
    team = guest.create_team(f"team-{uuid.uuid4().hex[:6]}", ["General"])
    resource = f"/teams/{team['id']}/channels/{team['channels']['General']}/messages"
    created = api.create_teams_subscription(resource, tenantId=guest_id)
    assert created.status_code == 201, created.text
    alice = EmulatorClient(f"{multi.emulator_url}/_tenants/{guest_id}", user="alice@fabrikam.com")
    with contextlib.closing(alice):
        message = alice.post_channel_message(team["id"], team["channels"]["General"], "<p>from a guest</p>")
    [change] = changes_of(api, created.json()["id"], 1)
    assert (change["itemId"], change["fields"]["preview"]) == (message, "from a guest")


def test_a_notification_carrying_another_tenants_subscription_is_refused(api, home, multi):
    guest_id, guest = consent(api, home, "Contoso-B")
    list_id = guest.create_list(SITE, "refusals")
    subscription = subscribe_list(api, SITE, list_id, guest_id)
    [remote] = [s for s in guest.subscriptions() if s["id"] == subscription["id"]]
    entry = {
        "subscriptionId": subscription["id"],
        "clientState": remote["clientState"],
        "expirationDateTime": "2026-04-30T17:27:00.0000000Z",
        "resource": list_id,
        "tenantId": multi.home_tenant_id,
        "siteUrl": SITE,
        "webId": str(uuid.uuid4()),
    }
    sent = httpx.post(f"{multi.functions_url}/api/notifications/sharepoint", json={"value": [entry]})
    assert sent.status_code == 202 and sent.json() == {"accepted": 0, "rejected": 1}
    own = httpx.post(
        f"{multi.functions_url}/api/notifications/sharepoint",
        json={"value": [{**entry, "tenantId": guest_id}]},
    )
    assert own.json() == {"accepted": 1, "rejected": 0}


def tenant_alerts(home) -> list[str]:
    arrivals = home.received("teams-workflow", ALERTS)
    cards = [json.loads(a["body"]) for a in arrivals if a["answered"] != 429]
    return [card["attachments"][0]["content"]["body"][0]["text"] for card in cards]


def test_a_revoked_tenant_stops_with_one_alert_and_the_other_flows(api, home, multi):
    guest_id, guest = consent(api, home, "Revokes")
    mine = subscribe_list(api, SITE, home.create_list(SITE, f"flows-{uuid.uuid4().hex[:6]}"), None)
    their_list = guest.create_list(SITE, "revoked")
    theirs = subscribe_list(api, SITE, their_list, guest_id)
    guest.add_item(SITE, their_list, "before")
    changes_of(api, theirs["id"], 1)

    guest.revoke_consent(multi.multi_tenant_app_id)
    guest.add_item(SITE, their_list, "while revoked")
    guest.add_item(SITE, their_list, "also while revoked")
    wait_until(lambda: api.tenant(guest_id).json()["state"] == "revoked", timeout=60, what="revoked")
    home.add_item(SITE, mine["listId"], "home goes on")
    assert titles(changes_of(api, mine["id"], 1)) == {"home goes on"}
    run_sweep(api, multi)
    alerts = wait_until(lambda: [t for t in tenant_alerts(home) if guest_id in t], what="the tenant alert")
    assert alerts == [f"Tenant {guest_id} refused this app (consent revoked): its reads and renewals stopped"]
    assert titles(api.changes(theirs["id"])) == {"before"}

    # It consents again: the sweep reads from the same cursor; nothing made meanwhile is lost.
    onboarded = api.onboard_tenant(guest_id, "Revokes", api.tenant(guest_id).json()["sharePointUrl"]).json()
    assert httpx.get(follow_consent(onboarded["consentUrl"])).json()["state"] == "active"
    run_sweep(api, multi)
    assert titles(changes_of(api, theirs["id"], 3)) == {"before", "while revoked", "also while revoked"}


def test_a_throttled_tenant_holds_only_its_own_reads(api, home, multi):
    guest_id, guest = consent(api, home, "Throttled")
    their_list = guest.create_list(SITE, "throttled")
    theirs = subscribe_list(api, SITE, their_list, guest_id)
    mine = subscribe_list(api, SITE, home.create_list(SITE, f"unthrottled-{uuid.uuid4().hex[:6]}"), None)
    guest.inject_fault("GetChanges", 429, retry_after=60, times=1000)
    guest.add_item(SITE, their_list, "held for a minute")
    wait_until(lambda: guest.calls("GetChanges") >= 1, what="the throttled read")
    home.add_item(SITE, mine["listId"], "not held")
    assert titles(changes_of(api, mine["id"], 1)) == {"not held"}
    assert api.changes(theirs["id"]) == []
    guest.clear_faults()


def test_removing_a_tenant_deletes_what_was_kept_and_says_what(api, home, multi):
    guest_id, guest = consent(api, home, "Leaves")
    their_list = guest.create_list(SITE, "leaving")
    theirs = subscribe_list(api, SITE, their_list, guest_id)
    sink = api.add_sink(theirs["id"], "webhook", home.receiver_url("webhook", "leaving"))
    assert sink.status_code == 201, sink.text
    guest.add_item(SITE, their_list, "one")
    guest.add_item(SITE, their_list, "two")
    changes_of(api, theirs["id"], 2)

    removed = api.remove_tenant(guest_id)
    assert removed.status_code == 200, removed.text
    assert removed.json() == {
        "tenantId": guest_id,
        "subscriptions": 1,
        "deletedAtSource": 1,
        "notDeletedAtSource": [],
        "sinks": 1,
        "changeRows": 2,
        "fieldValues": 0,
    }
    assert [s for s in guest.subscriptions() if s["id"] == theirs["id"]] == []
    assert api.get_subscription(theirs["id"]).status_code == 404
    assert api.tenant(guest_id).json()["state"] == "removed"
    refused = api.create_subscription(SITE, their_list, tenantId=guest_id)
    assert refused.status_code == 404


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_console_shows_one_tenant_at_a_time_and_subscribes_in_the_one_chosen(api, home, multi, browser):
    from playwright.sync_api import expect

    guest_id, guest = consent(api, home, "Console Guest")
    mine = subscribe_list(api, SITE, home.create_list(SITE, f"console-home-{uuid.uuid4().hex[:6]}"), None)
    theirs = subscribe_list(api, SITE, guest.create_list(SITE, "console-guest"), guest_id)
    picked = guest.create_list(SITE, "picked in the console")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{multi.functions_url}/api/console/")
        connect(page)
        # All tenants first: the home tenant's subscription is listed, named as the home's.
        home_row = page.locator(f'#subscriptions tbody tr[data-subscription-id="{mine["id"]}"]')
        expect(home_row.locator("td").nth(1)).to_have_text("home")
        page.get_by_label("Tenant", exact=True).select_option(guest_id)
        expect(page.locator(f'#subscriptions tbody tr[data-subscription-id="{theirs["id"]}"]')).to_have_count(
            1
        )
        expect(page.locator(f'#subscriptions tbody tr[data-subscription-id="{mine["id"]}"]')).to_have_count(0)
        expect(
            page.locator(f'#subscriptions tbody tr[data-subscription-id="{theirs["id"]}"] td').nth(1)
        ).to_have_text("Console Guest")

        page.locator("#create summary").click()
        page.get_by_label("Site URL").fill(SITE)
        page.get_by_role("button", name="Load the site's lists").click()
        page.get_by_label("List", exact=True).select_option(picked)
        page.locator("#sharepoint-form").get_by_role("button", name="Subscribe").click()
        made = page.locator(f'#subscriptions tbody tr[data-list-id="{picked}"]')
        expect(made).to_have_count(1)
        created = [
            s for s in api.list_subscriptions(tenantId=guest_id).json()["value"] if s["listId"] == picked
        ]
        assert [s["tenantId"] for s in created] == [guest_id]
    finally:
        context.close()


def test_a_single_tenant_deployment_keeps_everything_when_it_turns_multi_tenant(tmp_path):
    with contextlib.ExitStack() as resources:
        stack = resources.enter_context(
            Stack(ports=Ports.free(), storage_dir=tmp_path / "azurite", delivery_interval=0.3)
        )
        emulator = resources.enter_context(contextlib.closing(EmulatorClient(stack.emulator_url)))
        api = FunctionsClient(stack.functions_url, key=DEFAULT_FUNCTION_KEY, master_key=DEFAULT_MASTER_KEY)
        with contextlib.closing(api):
            list_id = emulator.create_list(SITE, "upgraded")
            before = subscribe_list(api, SITE, list_id, None)
            emulator.add_item(SITE, list_id, "single-tenant")
            changes_of(api, before["id"], 1)

        stack.kill("functions-host")
        stack.tenancy = "multi"
        stack.register_multi_tenant_app()
        stack.start_host()
        api = FunctionsClient(stack.functions_url, key=DEFAULT_FUNCTION_KEY, master_key=DEFAULT_MASTER_KEY)
        with contextlib.closing(api):
            after = api.get_subscription(before["id"]).json()
            assert after["tenantId"] == stack.home_tenant_id and after["listId"] == list_id
            emulator.add_item(SITE, list_id, "multi-tenant")
            assert titles(changes_of(api, before["id"], 2)) == {"single-tenant", "multi-tenant"}
