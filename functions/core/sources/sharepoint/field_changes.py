"""What a page of changes did to the fields a subscription follows.

SharePoint's change log says only that an item changed. For each page of item changes the reader
asks for the followed fields of the changed items (one `GetItems` per 500 items), compares them
with the values it read last time (`itemfields`), and writes on each change row the values now
(`fields`) and what moved (`changedFields`, before and after). Each item's entry keeps the values
read, those before them and the change they were read for, so a page read again writes its rows
the same.

Values read when the change is read are not the values the change made: two edits of one item in
one page would show as one difference, and the first change read of an item that existed before
has no before. For exactly those items, when the list keeps versions (SharePoint Online's
default), the item's versions are read too (`items({id})/versions`, batched) and each add or
update gets its own before and after from the versions it made (`fieldsFrom: "versions"`); a
list that keeps no versions keeps the values read, and its rows say so (`fieldsFrom: "reads"`).

Where the change log names no editor (SharePoint often leaves `Editor` empty), the change an item
last had in the page takes the editor the same read found on the item (`changedBySource: "item"`):
who wrote it last when it was read. An app-only write shows there as `SharePoint App`, whichever
app it was; only the change log names the app.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ...models import ChangeKind
from .client import ListRef, SharePointClient
from .field_values import FieldValues, FieldValueStore, bounded
from .models import CHANGE_KINDS, SharePointChange, SharePointItemVersion
from .rows import changed_by

# The changes that make a version; a SystemUpdate, a rename or a move makes none.
VERSIONED = (ChangeKind.ADD, ChangeKind.UPDATE)
# A version is stamped when its change is: a version later than the item's last change in the
# page by more than this was made after the page was read.
VERSION_CLOCK_SLACK = timedelta(seconds=1)
# The site user every app-only write names as its editor ("SharePoint App").
SHAREPOINT_APP_USER_ID = 1073741822


@dataclass(frozen=True)
class FieldTracker:
    client: SharePointClient
    store: FieldValueStore

    def annotate(
        self,
        listed: ListRef,
        fields: Sequence[str],
        page: Sequence[SharePointChange],
        rows: Sequence[dict[str, Any]],
        subscription_id: str,
    ) -> None:
        """Add `fields`, `changedFields`, `fieldsFrom` and `fieldsBeforeUnknown` to the page's
        rows, in place, and remember the values read for the next page."""
        kinds = [CHANGE_KINDS.get(change.change_type, ChangeKind.OTHER) for change in page]
        changed = sorted(
            {c.item_id for c, k in zip(page, kinds, strict=True) if c.item_id and k is not ChangeKind.DELETE}
        )
        read = self.client.field_values(listed, changed, fields, subscription_id=subscription_id)
        now = {item_id: bounded(found.values) for item_id, found in read.items()}
        buckets = self.store.read(listed.list_id, {c.item_id for c in page if c.item_id})
        known = {item_id: stored for bucket in buckets.values() for item_id, stored in bucket.values.items()}
        added_here = {c.item_id for c, k in zip(page, kinds, strict=True) if k is ChangeKind.ADD}
        last_index = {change.item_id: index for index, change in enumerate(page) if change.item_id}
        # Items whose values read cannot tell each change's own before and after.
        versioned = [c.item_id for c, k in zip(page, kinds, strict=True) if c.item_id and k in VERSIONED]
        unclear = sorted(
            item_id
            for item_id in set(versioned) & set(now)
            if versioned.count(item_id) > 1 or (item_id not in known and item_id not in added_here)
        )
        exact, source = self._exact(listed, fields, page, kinds, unclear, subscription_id)
        remembered: dict[int, FieldValues] = {}
        for index, (change, kind, row) in enumerate(zip(page, kinds, rows, strict=True)):
            item_id = change.item_id
            if not item_id:
                continue
            stored = known.get(item_id)
            # A page read again (a retried message) finds its own values stored: the values
            # before are the ones kept beside them, so the row is written again the same.
            replayed = stored is not None and stored.get("read") == row["RowKey"]
            before = (stored.get("before") if replayed else stored.get("values")) if stored else None
            after = now.get(item_id) if kind is not ChangeKind.DELETE else None
            if item_id in unclear:
                row["fieldsFrom"] = source
            if index in exact:
                _describe(row, *exact[index])
            elif after is None:  # deleted, now or by the time it was read: what was last known
                if before is not None:
                    row["fields"] = json.dumps(before)
                continue
            else:
                row["fields"] = json.dumps(after)
            if last_index[item_id] != index:
                continue  # it changed again later in this page: the difference goes there
            if after is not None:
                remembered[item_id] = {"values": after, "before": before, "read": row["RowKey"]}
            if index in exact or after is None:
                continue
            editor = read[item_id].editor
            if "changedBy" not in row and editor is not None:
                named = changed_by(editor.name, editor.email)
                row.update(named, **({"changedBySource": "item"} if named else {}))
            if before is None and item_id not in added_here:
                row["fieldsBeforeUnknown"] = True
                continue
            difference = _difference(before or {}, after)
            if difference:
                row["changedFields"] = json.dumps(difference)
        if remembered:
            self.store.write(listed.list_id, remembered, buckets)

    def _exact(
        self,
        listed: ListRef,
        fields: Sequence[str],
        page: Sequence[SharePointChange],
        kinds: Sequence[ChangeKind],
        items: Sequence[int],
        subscription_id: str,
    ) -> tuple[dict[int, tuple[FieldValues | None, FieldValues, SharePointItemVersion]], str]:
        """Each add or update of those items, by its index in the page: the values before it and
        after it, from the versions it made, and the version; and where the rows' values come
        from ("versions", or "reads" when the list keeps none)."""
        if not items:
            return {}, "reads"
        read = self.client.item_versions(listed, items, subscription_id=subscription_id)
        if not read.enabled:
            return {}, "reads"
        exact: dict[int, tuple[FieldValues | None, FieldValues, SharePointItemVersion]] = {}
        for item_id in items:
            mine = [
                i
                for i, (c, k) in enumerate(zip(page, kinds, strict=True))
                if c.item_id == item_id and k in VERSIONED
            ]
            last_time = max(page[i].time for i in mine)
            made = [v for v in read.versions.get(item_id, []) if v.created <= last_time + VERSION_CLOCK_SLACK]
            if len(made) < len(mine):
                continue  # versions trimmed, or made while versioning was off: keep the values read
            first = len(made) - len(mine)
            for offset, index in enumerate(mine):
                version = made[first + offset]
                previous = made[first + offset - 1] if first + offset > 0 else None
                before = (
                    None
                    if kinds[index] is ChangeKind.ADD or previous is None
                    else bounded(previous.values(fields))
                )
                exact[index] = (before, bounded(version.values(fields)), version)
        return exact, "versions"


def _describe(
    row: dict[str, Any], before: FieldValues | None, after: FieldValues, version: SharePointItemVersion
) -> None:
    """One change's own values, what it moved, and who made it (the version's editor, where the
    change log named no one)."""
    row["fields"] = json.dumps(after)
    difference = _difference(before or {}, after)
    if difference:
        row["changedFields"] = json.dumps(difference)
    editor = version.editor or {}
    if "changedBy" in row or not (editor.get("Email") or editor.get("LookupValue")):
        return
    if editor.get("LookupId") == SHAREPOINT_APP_USER_ID:  # an app-only write: which app, only the log says
        named = {"changedBy": str(editor.get("LookupValue")), "changedByKind": "application"}
    else:
        named = changed_by(editor.get("LookupValue"), editor.get("Email"))
    row.update(named, changedBySource="version")


def _difference(before: FieldValues, after: FieldValues) -> dict[str, dict[str, Any]]:
    return {
        name: {"before": before.get(name), "after": value}
        for name, value in after.items()
        if before.get(name) != value
    }
