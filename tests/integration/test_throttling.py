"""SharePoint throttles an app as a whole: after a 429, no request of that app, for any list,
is answered before the Retry-After has passed, and each one sent meanwhile counts against it."""

from __future__ import annotations

import threading
import uuid

from functions.core.sources.sharepoint import ListRef
from tests.helpers import wait_until
from tests.integration.conftest import SITE
from tests.integration.test_emulator import as_app, token_for


def list_path(list_id: str) -> str:
    return f"{SITE}/_api/web/lists('{list_id}')"


def another_list(emulator) -> str:
    return emulator.create_list(SITE, f"other-{uuid.uuid4().hex[:8]}")


def test_the_emulator_throttles_every_request_of_an_app_inside_a_429s_retry_after(emulator, new_list):
    other = another_list(emulator)
    before = emulator.requests_while_throttled()
    emulator.inject_fault("GetList", 429, retry_after=30, times=1, path_contains=new_list)
    assert emulator.sharepoint("GET", list_path(new_list)).status_code == 429
    elsewhere = emulator.sharepoint("GET", list_path(other))
    assert elsewhere.status_code == 429
    assert 0 < int(elsewhere.headers["Retry-After"]) <= 30
    assert emulator.requests_while_throttled() == before + 1
    # Usage is counted per app: another app's requests are not held.
    assert as_app(emulator, token_for(emulator, "another-app"), "GET", list_path(other)).status_code == 200


def test_the_emulator_holds_only_the_same_request_after_a_503(emulator, new_list):
    other = another_list(emulator)
    early_before = emulator.early_retries()
    emulator.inject_fault("GetList", 503, retry_after=30, times=1, path_contains=new_list)
    assert emulator.sharepoint("GET", list_path(new_list)).status_code == 503
    assert emulator.sharepoint("GET", list_path(other)).status_code == 200
    assert emulator.sharepoint("GET", list_path(new_list)).status_code == 503  # too soon
    assert emulator.early_retries() == early_before + 1


def test_after_a_429_no_call_of_ours_goes_out_before_its_retry_after_whatever_it_is_for(
    services, emulator, new_list, stack
):
    other = another_list(emulator)
    source = services.sharepoint.client
    site_url = f"{stack.emulator_url}{SITE}"
    before = (emulator.requests_while_throttled(), emulator.early_retries())
    emulator.inject_fault("GetList", 429, retry_after=2, times=1, path_contains=new_list)
    throttled = threading.Thread(target=source.current_change_token, args=(ListRef(site_url, new_list),))
    throttled.start()
    wait_until(lambda: source.throttle.remaining() > 0, timeout=10, what="the 429")
    assert source.current_change_token(ListRef(site_url, other))  # waits out the rest, then asks
    throttled.join()
    assert (emulator.requests_while_throttled(), emulator.early_retries()) == before
