"""The console in a real browser: Playwright for Python driving Debian's Chromium (Playwright's own
browser download is out of reach here), against the whole local stack."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from playwright.sync_api import expect

from functions.core.resources import NOTIFICATIONS_POISON_QUEUE
from functions.core.settings import StorageSettings
from functions.core.storage import Storage
from tests.e2e.conftest import CHROMIUM, NO_CHROMIUM, SITE, connect, run_sweep
from tests.helpers import wait_until

if CHROMIUM is None and os.environ.get("CI") == "true":
    # .ci/run installs Chromium: a skip there would mean the console went unchecked.
    raise RuntimeError(f"{NO_CHROMIUM}; in CI that is a failure, not a skip")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
SCREENSHOT = os.environ.get("CONSOLE_SCREENSHOT")  # e.g. docs/console.png, to refresh the README's


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.dialogs = []  # outside a confirm the test expects, a dialog is an injected script running
    page.accept_dialogs = False

    def answer(dialog) -> None:
        page.dialogs.append(dialog.message)
        dialog.accept() if page.accept_dialogs else dialog.dismiss()

    page.on("dialog", answer)
    page.goto(f"{stack.functions_url}/api/console/")
    yield page
    context.close()


def test_the_page_is_static_with_a_strict_policy(stack):
    import httpx

    response = httpx.get(f"{stack.functions_url}/api/console/")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in response.text and " style=" not in response.text


def test_the_page_without_its_slash_is_redirected_to_it(stack):
    import httpx

    response = httpx.get(f"{stack.functions_url}/api/console")
    assert response.status_code == 308 and response.headers["location"] == "/api/console/"
    followed = httpx.get(f"{stack.functions_url}/api/console", follow_redirects=True)
    assert followed.status_code == 200 and "/api/console/console.js" in followed.text


def test_a_wrong_key_says_so(page):
    connect(page, "not-the-key")
    page.get_by_role("status").filter(has_text="401").wait_for()
    assert page.locator("#app").is_hidden()


def test_create_by_picking_a_list_see_a_change_add_and_test_a_teams_sink_then_remove_it(page, emulator):
    title = f"Console tasks {uuid.uuid4().hex[:6]}"
    list_id = emulator.create_list(SITE, title)
    connect(page)
    page.get_by_text("New subscription").click()
    page.get_by_label("Site URL", exact=True).fill(SITE)
    page.get_by_role("button", name="Load the site's lists").click()
    page.get_by_label("List", exact=True).select_option(list_id)
    page.locator("#sharepoint-form").get_by_role("button", name="Subscribe").click()
    page.get_by_role("status").filter(has_text="Subscribed").wait_for()

    subscription_row = page.locator(f'#subscriptions tbody tr[data-list-id="{list_id}"]')
    expect(subscription_row).to_contain_text(f"{title} · ")  # by its title and site
    expect(subscription_row.locator("td").nth(3)).to_have_text("healthy")  # its state, on the row
    item = emulator.add_item(SITE, list_id, "from the console test")
    subscription_row.get_by_role("button", name="Open").click()
    for _ in range(60):
        if page.locator("#changes tbody tr", has_text=f"item {item}").count():
            break
        page.wait_for_timeout(500)
        subscription_row.get_by_role("button", name="Open").click()
    assert page.locator("#changes tbody tr", has_text=f"item {item}").count() == 1
    expect(page.locator("#health")).to_contain_text("Failed reads in a row")

    receiver = f"console-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Type", exact=True).select_option("teams-workflow")
    page.get_by_label("URL", exact=True).fill(emulator.receiver_url("teams-workflow", receiver))
    page.get_by_label("Leave out changes by", exact=False).fill(" robot@contoso.com, ")
    page.locator("#sink-form").get_by_role("button", name="Add").click()
    page.get_by_role("status").filter(has_text="Connector added").wait_for()
    sink_row = page.locator("#sinks tbody tr", has_text="teams-workflow")
    assert "…" in sink_row.inner_text()  # the URL is shown masked
    expect(sink_row).to_contain_text("all; not by robot@contoso.com")
    sink_row.get_by_role("button", name="Send a test").click()
    page.get_by_role("status").filter(has_text="Delivered").wait_for()
    assert "202" in page.get_by_role("status").inner_text()
    assert [r["valid"] for r in emulator.received("teams-workflow", receiver)] == [True]
    sink_row.get_by_role("button", name="Disable").click()
    page.get_by_role("status").filter(has_text="Connector disabled").wait_for()
    expect(sink_row).to_contain_text("disabled through the management API")
    sink_row.get_by_role("button", name="Enable").click()
    page.get_by_role("status").filter(has_text="resumes where it stopped").wait_for()
    expect(sink_row).to_contain_text("active")
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)
    sink_row.get_by_role("button", name="Remove").click()
    page.get_by_role("status").filter(has_text="Connector removed").wait_for()
    expect(page.locator("#sinks tbody tr", has_text="teams-workflow")).to_have_count(0)


def test_untrusted_names_show_as_text_and_run_nothing(page, emulator):
    hostile = f"<img src=x onerror=alert(1)> {uuid.uuid4().hex[:6]}"
    emulator.create_list(SITE, hostile)
    connect(page)
    page.get_by_text("New subscription").click()
    page.get_by_label("Site URL", exact=True).fill(SITE)
    page.get_by_role("button", name="Load the site's lists").click()
    option = page.locator("#list-pick option", has_text=hostile)
    option.wait_for(state="attached")
    assert option.count() == 1
    assert option.inner_text().startswith("<img src=x onerror=alert(1)>")
    assert page.locator("img").count() == 0
    page.wait_for_timeout(300)
    assert page.dialogs == []


def test_deleting_asks_first_and_a_no_keeps_the_subscription(page, api, new_list):
    subscription_id = api.create_subscription(SITE, new_list).json()["id"]
    connect(page)
    row = page.locator(f'#subscriptions tbody tr[data-list-id="{new_list}"]')
    row.get_by_role("button", name="Delete").click()  # answered "no"
    for _ in range(50):
        if page.dialogs:
            break
        page.wait_for_timeout(100)
    assert page.dialogs and subscription_id in page.dialogs[0]
    assert api.get_subscription(subscription_id).status_code == 200

    page.accept_dialogs = True
    row.get_by_role("button", name="Delete").click()
    page.get_by_role("status").filter(has_text="Deleted").wait_for()
    assert api.get_subscription(subscription_id).status_code == 404
    expect(row).to_have_count(0)


def test_a_poisoned_message_is_listed_and_replayed(page, stack):
    storage = Storage(StorageSettings(connection_string=stack.connection_string))
    marker = str(uuid.uuid4())
    body = {
        "source": "sharepoint",
        "receivedAt": "2026-01-01T00:00:00Z",
        "notifications": [{"subscriptionId": marker, "resource": "r", "siteUrl": SITE}],
    }
    storage.queue(NOTIFICATIONS_POISON_QUEUE).send_message(json.dumps(body))
    connect(page)
    page.locator("#poison tbody tr", has_text=marker).wait_for()
    page.get_by_role("button", name="Replay all").click()
    page.get_by_role("status").filter(has_text="Replayed").wait_for()
    expect(page.locator("#poison tbody tr", has_text=marker)).to_have_count(0)


def test_every_control_has_a_label_and_the_keyboard_reaches_it(page):
    connect(page)
    page.locator("#app").wait_for()
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input, select')]
              .filter((el) => !el.labels || el.labels.length === 0).map((el) => el.id)"""
    )
    assert unlabeled == []
    page.reload()  # the key is kept for the tab: it connects again by itself
    page.locator("#app").wait_for()
    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent"))
    assert order == ["key", "Connect", "forget-key", "Open"]


def test_the_console_loads_without_an_error_and_shows_which_fields_moved_and_the_state(
    browser, stack, api, emulator, new_list
):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("response", lambda response: problems.append(response.url) if response.status >= 400 else None)
    page.goto(f"{stack.functions_url}/api/console/")
    subscription = api.create_subscription(
        SITE, new_list, fields=["Status", "Title"], ignoreChangesBy=["robot@contoso.com"]
    ).json()
    item = emulator.add_item(SITE, new_list, "console fields", Status="Draft")
    wait_until(lambda: api.changes(subscription["id"]), what="the first change")
    emulator.update_item(SITE, new_list, item, Status="Approved")
    wait_until(lambda: len(api.changes(subscription["id"])) == 2, what="the second change")
    connect(page)
    row = page.locator(f'#subscriptions tbody tr[data-list-id="{new_list}"]')
    row.get_by_role("button", name="Open").click()
    expect(page.locator("#changes tbody tr").first).to_contain_text("Status: Draft → Approved")
    expect(page.locator("#changes tbody tr").first).to_contain_text(f"console fields (item {item})")
    expect(page.locator("#health")).to_contain_text("healthy")
    expect(page.locator("#health")).to_contain_text("Fields followed")
    expect(page.locator("#health")).to_contain_text("robot@contoso.com")  # whose changes are left out
    # The changes-per-hour strip: both changes in the newest hour's bar.
    expect(page.locator("#strip svg rect").last).to_have_attribute("data-count", "2")
    assert page.locator("#strip svg rect").count() == 48
    expect(page.locator("#strip-caption")).to_contain_text("2 in all")
    lines = (
        "cell => { const r = document.createRange(); r.selectNodeContents(cell);"
        " return r.getClientRects().length; }"
    )
    for cell in (row.locator("td").first, row.locator("td").nth(3)):  # "sharepoint", "healthy" unbroken
        assert cell.evaluate("cell => cell.scrollWidth <= cell.clientWidth")
        assert cell.evaluate(lines) == 1
    assert problems == []
    context.close()


def test_each_row_of_the_list_shows_its_health_state(page, api, sharepoint_clock, new_list, stack):
    emulator = sharepoint_clock
    subscription = api.create_subscription(SITE, new_list).json()
    emulator.withhold(subscription["id"])
    try:
        emulator.set_clock_offset(-3600)  # an hour ago, and never announced
        emulator.add_item(SITE, new_list, "unannounced")
        emulator.set_clock_offset(0)
        run_sweep(api, stack)
        wait_until(
            lambda: api.get_subscription(subscription["id"]).json()["healthSummary"]["state"] == "late",
            what="the gap on the subscription's record",
        )
    finally:
        emulator.withhold(subscription["id"], False)
    connect(page)
    row = page.locator(f'#subscriptions tbody tr[data-list-id="{new_list}"]')
    expect(row.locator("td").nth(3)).to_contain_text("late (gap ")


def test_a_teams_channel_is_subscribed_from_the_console_and_listed_by_its_name(page, emulator):
    team = emulator.create_team(f"Console team {uuid.uuid4().hex[:6]}", ["Releases"])
    resource = f"/teams/{team['id']}/channels/{team['channels']['Releases']}/messages"
    connect(page)
    page.get_by_text("New subscription").click()
    form = page.locator("#teams-form")
    form.get_by_label("Resource", exact=True).fill(resource)
    form.get_by_role("button", name="Subscribe").click()
    page.get_by_role("status").filter(has_text="Subscribed").wait_for()
    expect(page.locator("#subscriptions tbody tr", has_text=resource)).to_contain_text(
        f"#Releases · {resource}"
    )
