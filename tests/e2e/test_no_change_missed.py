"""SharePoint: no change is ever missed, through the local host, the emulator and Azurite."""

from __future__ import annotations

import json
import uuid

import httpx
from azure.data.tables import UpdateMode

from functions.core.resources import CHECKPOINTS_TABLE
from functions.core.settings import StorageSettings
from functions.core.sources.sharepoint import SHAREPOINT
from functions.core.storage import Storage
from tests.e2e.conftest import SITE, run_sweep
from tests.helpers import wait_until

DAY = 86_400


def kinds(changes: list[dict]) -> list[tuple]:
    return [(c["changeType"], c.get("sourceChangeType"), c.get("fileName")) for c in changes]


def wait_for_changes(api, subscription_id: str, count: int) -> list[dict]:
    return wait_until(
        lambda: (found := api.changes(subscription_id)) and len(found) >= count and found,
        timeout=60,
        what=f"{count} change(s) in GET /api/changes",
    )


def test_a_list_quiet_past_the_change_log_is_resynced_not_skipped(api, sharepoint_clock, new_list):
    emulator = sharepoint_clock
    subscription = api.create_subscription(SITE, new_list).json()
    first = emulator.add_item(SITE, new_list, "before the quiet spell")
    wait_for_changes(api, subscription["id"], 1)

    emulator.advance_clock(61 * DAY)  # SharePoint now refuses the stored token
    second = emulator.add_item(SITE, new_list, "after the quiet spell")
    changes = wait_for_changes(api, subscription["id"], 3)

    assert [c["itemId"] for c in changes if c["changeType"] == "add"] == [first]
    [resync] = [c for c in changes if c["changeType"] == "resync"]
    assert resync["resync"] is True
    assert resync["resyncFrom"] < resync["resyncTo"]
    assert "deletions inside it cannot be read back" in resync["reason"]
    [rebuilt] = [c for c in changes if c.get("itemId") == second]
    assert (rebuilt["changeType"], rebuilt["resync"]) == ("update", True)
    assert changes.index(resync) < changes.index(rebuilt)


def test_the_sweep_keeps_a_quiet_lists_checkpoint_away_from_the_edge(api, sharepoint_clock, new_list, stack):
    emulator = sharepoint_clock
    subscription = api.create_subscription(SITE, new_list).json()
    emulator.add_item(SITE, new_list, "first")
    wait_for_changes(api, subscription["id"], 1)

    emulator.advance_clock(40 * DAY)
    run_sweep(api, stack)  # no change, no notification: the checkpoint moves to the current token
    emulator.advance_clock(40 * DAY)  # 80 days after the first token, 40 after the sweep
    later = emulator.add_item(SITE, new_list, "eighty days later")

    changes = wait_for_changes(api, subscription["id"], 2)
    assert [(c["changeType"], c.get("itemId")) for c in changes][1] == ("add", later)
    assert not [c for c in changes if c.get("resync")]


def test_the_sweep_reads_changes_whose_notification_never_came(api, emulator, new_list, stack):
    subscription = api.create_subscription(SITE, new_list).json()
    emulator.drop_subscription(subscription["id"])  # SharePoint will notify no one
    item = emulator.add_item(SITE, new_list, "unannounced")
    run_sweep(api, stack)
    assert [c["itemId"] for c in api.changes(subscription["id"])] == [item]


def test_a_too_old_token_that_sharepoint_accepts_anyway_loses_nothing(api, sharepoint_clock, new_list):
    emulator = sharepoint_clock
    emulator.accept_expired_change_tokens(True)  # sp-dev-docs issue 10389
    subscription = api.create_subscription(SITE, new_list).json()
    emulator.add_item(SITE, new_list, "first")
    wait_for_changes(api, subscription["id"], 1)
    emulator.advance_clock(61 * DAY)
    second = emulator.add_item(SITE, new_list, "second")
    changes = wait_for_changes(api, subscription["id"], 2)
    assert (changes[1]["changeType"], changes[1]["itemId"]) == ("add", second)


def test_every_change_type_on_a_document_library_reaches_the_change_log(api, emulator):
    library, root = emulator.create_library(SITE, f"Docs{uuid.uuid4().hex[:6]}")
    emulator.add_folder(SITE, root, "Archive")  # SharePoint moves only into a folder that exists
    subscription = api.create_subscription(SITE, library).json()
    emulator.upload(SITE, root, "plan.docx", b"v1")  # 1 Add
    emulator.upload(SITE, root, "plan.docx", b"v2")  # 2 Update (overwrite)
    emulator.file_call(SITE, f"{root}/plan.docx", "CheckOut()")  # 15 SystemUpdate
    emulator.file_call(SITE, f"{root}/plan.docx", "CheckIn(comment='done',checkintype=1)")  # 2 Update
    emulator.rename_file(SITE, f"{root}/plan.docx", "plan-final.docx")  # 4 Rename
    emulator.file_call(
        SITE, f"{root}/plan-final.docx", f"moveto(newurl='{root}/Archive/plan-final.docx',flags=1)"
    )
    recycled = emulator.file_call(SITE, f"{root}/Archive/plan-final.docx", "recycle()").json()["value"]  # 3
    emulator.restore(SITE, recycled)  # 7 Restore
    emulator.delete_file(SITE, f"{root}/Archive/plan-final.docx")  # 3 DeleteObject

    changes = wait_for_changes(api, subscription["id"], 10)
    assert kinds(changes) == [
        ("add", 1, "plan.docx"),
        ("update", 2, "plan.docx"),
        ("update", 15, "plan.docx"),
        ("update", 2, "plan.docx"),
        ("rename", 4, "plan-final.docx"),
        ("move", 5, "plan-final.docx"),
        ("move", 6, "plan-final.docx"),
        ("delete", 3, "plan-final.docx"),
        ("restore", 7, "plan-final.docx"),
        ("delete", 3, "plan-final.docx"),
    ]
    assert changes[0]["serverRelativeUrl"] == f"{root}/plan.docx"
    assert changes[-1]["serverRelativeUrl"] == f"{root}/Archive/plan-final.docx"
    assert len({c["uniqueId"] for c in changes}) == 1  # one document throughout


def test_a_45_second_retry_after_delays_the_change_and_poisons_nothing(api, emulator, new_list, stack):
    subscription = api.create_subscription(SITE, new_list).json()
    emulator.inject_fault("GetChanges", 503, retry_after=45, times=1, path_contains=new_list)
    item = emulator.add_item(SITE, new_list, "throttled")
    changes = wait_until(lambda: api.changes(subscription["id"]), timeout=120, what="the throttled change")
    assert [c["itemId"] for c in changes] == [item]
    host_log = (stack.log_dir / "functions-host.log").read_text()
    assert f"subscription(s) {subscription['id']} throttled with Retry-After up to 45s" in host_log
    poisoned = api.http.get("/api/poison").json()["value"]
    assert not [m for m in poisoned if subscription["id"] in m.get("subscriptions", [])]


def test_a_token_of_another_list_is_poisoned_at_once_with_the_reason(api, emulator, new_list, stack):
    subscription = api.create_subscription(SITE, new_list).json()
    other = emulator.create_list(SITE, f"other-{uuid.uuid4().hex[:6]}")
    other_token = emulator.sharepoint("GET", f"{SITE}/_api/web/lists('{other}')").json()["CurrentChangeToken"]
    table = Storage(StorageSettings(connection_string=stack.connection_string)).table(CHECKPOINTS_TABLE)
    table.update_entity(
        {"PartitionKey": SHAREPOINT, "RowKey": new_list, "changeToken": other_token["StringValue"]},
        mode=UpdateMode.MERGE,
    )
    emulator.add_item(SITE, new_list, "after the corruption")

    def listed() -> list[dict]:
        value = api.http.get("/api/poison").json()["value"]
        return [m for m in value if subscription["id"] in m.get("subscriptions", [])]

    [entry] = wait_until(listed, timeout=60, what="the poisoned message")
    assert entry["attempts"] == 1
    assert "not this list's" in entry["firstFailure"]["reason"]
    assert "-2130575173" in entry["firstFailure"]["reason"]


def test_concurrent_creates_for_one_list_make_exactly_one_subscription(emulator, new_list, stack):
    from concurrent.futures import ThreadPoolExecutor

    def create(_: int) -> httpx.Response:
        return httpx.post(
            f"{stack.functions_url}/api/subscriptions",
            json={"siteUrl": SITE, "listId": new_list},
            headers={"x-functions-key": "local-function-key"},
            timeout=60,
        )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(create, range(8)))
    created = [a for a in answers if a.status_code == 201]
    conflicts = [a for a in answers if a.status_code == 409]
    assert (len(created), len(conflicts)) == (1, 7), [a.status_code for a in answers]
    winner = created[0].json()["id"]
    assert all(
        winner in a.json()["error"]["message"] or "being created" in a.json()["error"]["message"]
        for a in conflicts
    )
    at_sharepoint = [s for s in emulator.subscriptions() if s["resource"] == new_list]
    assert [s["id"] for s in at_sharepoint] == [winner]
    assert json.loads(created[0].text)["listId"] == new_list


def test_a_subscription_following_fields_shows_what_moved_through_the_api(api, emulator, new_list):
    subscription = api.create_subscription(SITE, new_list, fields=["Status", "Priority"]).json()
    assert subscription["fields"] == ["Status", "Priority"]
    item = emulator.add_item(SITE, new_list, "contract", Status="Draft", Priority=2)
    wait_for_changes(api, subscription["id"], 1)
    emulator.update_item(SITE, new_list, item, Status="Approved")
    changes = wait_for_changes(api, subscription["id"], 2)
    assert changes[0]["changedFields"] == {
        "Status": {"before": None, "after": "Draft"},
        "Priority": {"before": None, "after": 2},
    }
    assert changes[1]["changedFields"] == {"Status": {"before": "Draft", "after": "Approved"}}
    assert changes[1]["fields"] == {"Status": "Approved", "Priority": 2}
    # SP.ChangeItem's Editor: the emulator's callers write with an app-only token.
    assert changes[1]["changedByKind"] == "application"
    assert changes[1]["changedBy"].startswith("i:0i.t|ms.sp.ext|")

    emulator.delete_item(SITE, new_list, item)
    deleted = wait_for_changes(api, subscription["id"], 3)[2]
    assert deleted["changeType"] == "delete" and deleted["fields"] == {"Status": "Approved", "Priority": 2}
    refused = api.create_subscription(SITE, emulator.create_list(SITE, "other"), fields=["Bad name"])
    assert refused.status_code == 400


def test_changes_no_notification_announced_show_as_a_gap_and_the_subscription_as_late(
    api, sharepoint_clock, new_list, stack
):
    emulator = sharepoint_clock
    subscription = api.create_subscription(SITE, new_list).json()
    emulator.withhold(subscription["id"])  # the source goes quiet for this subscription
    emulator.set_clock_offset(-3600)  # the change was made an hour ago
    emulator.add_item(SITE, new_list, "never announced")
    emulator.deliver()
    assert emulator.counters()["delivery"]["withheld"] >= 1
    run_sweep(api, stack)
    wait_for_changes(api, subscription["id"], 1)  # the sweep found it
    health = wait_until(
        lambda: (
            (h := api.get_subscription(subscription["id"]).json()["health"])["notificationGaps"]["count"]
            and h
        ),
        what="the gap in the subscription's health",
    )
    assert health["state"] == "late"  # created minutes ago: not yet a day without notifications
    assert health["notificationGaps"]["longestSeconds"] >= 3000
    # The subscription list says so on its row, from the record alone.
    [row] = [s for s in api.all_subscriptions() if s["id"] == subscription["id"]]
    assert row["healthSummary"]["state"] == "late" and row["healthSummary"]["lastGapDateTime"]
    emulator.withhold(subscription["id"], False)
