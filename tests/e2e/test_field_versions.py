"""Before and after, per change, through the local host and the emulator: an item created as
Draft and approved before SharePoint's notification arrives shows two changes, each with its own
before and after, read from the item's versions; a list that keeps no versions says its rows
carry the values read."""

from __future__ import annotations

import uuid

from tests.e2e.conftest import SITE
from tests.helpers import wait_until


def subscribe_with_status(api, list_id: str) -> dict:
    response = api.create_subscription(SITE, list_id, fields=["Status"])
    assert response.status_code == 201, response.text
    return response.json()


def draft_then_approved_before_any_notification(api, emulator, *, versioning: bool) -> list[dict]:
    list_id = emulator.create_list(SITE, f"approvals-{uuid.uuid4().hex[:6]}")
    if not versioning:
        switched = emulator.sharepoint(
            "PATCH", f"{SITE}/_api/web/lists('{list_id}')", json={"EnableVersioning": False}
        )
        assert switched.status_code == 204, switched.text
    subscription = subscribe_with_status(api, list_id)
    emulator.withhold(subscription["id"])  # SharePoint's notification comes after both edits
    item = emulator.add_item(SITE, list_id, "Contract", Status="Draft")
    emulator.update_item(SITE, list_id, item, Status="Approved")
    emulator.withhold(subscription["id"], False)
    emulator.add_item(SITE, list_id, "the change that notifies", Status="New")
    changes = wait_until(
        lambda: (found := api.changes(subscription["id"])) and len(found) >= 3 and found,
        timeout=60,
        what="the three changes",
    )
    return [c for c in changes if c.get("itemId") == item]


def test_created_as_draft_and_approved_reads_as_two_changes_each_with_its_own_before(api, emulator):
    added, approved = draft_then_approved_before_any_notification(api, emulator, versioning=True)
    assert added["changedFields"] == {"Status": {"before": None, "after": "Draft"}}
    assert approved["changedFields"] == {"Status": {"before": "Draft", "after": "Approved"}}
    assert (added["fieldsFrom"], approved["fieldsFrom"]) == ("versions", "versions")
    assert emulator.calls("GetItemVersions") >= 1


def test_without_versions_the_rows_say_they_carry_the_values_read(api, emulator):
    added, approved = draft_then_approved_before_any_notification(api, emulator, versioning=False)
    assert "changedFields" not in added
    assert approved["changedFields"] == {"Status": {"before": None, "after": "Approved"}}
    assert (added["fieldsFrom"], approved["fieldsFrom"]) == ("reads", "reads")
