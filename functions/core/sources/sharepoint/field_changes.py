"""What a page of changes did to the fields a subscription follows.

SharePoint's change log says only that an item changed. For each page of item changes the reader
asks for the followed fields of the changed items (one `GetItems` per 500 items), compares them
with the values it read last time (`itemfields`), and writes on each change row the values now
(`fields`) and what moved (`changedFields`, before and after). Values are read when the change is
read, not when it was made: several changes of one item in one page show as one difference, on
the last of them, and a delete carries the last values read. Each item's entry keeps the values
read, those before them and the change they were read for, so a page read again writes its rows
the same.

Where the change log names no editor (SharePoint often leaves `Editor` empty), the change an item
last had in the page takes the editor the same read found on the item (`changedBySource: "item"`):
who wrote it last when it was read. An app-only write shows there as `SharePoint App`, whichever
app it was; only the change log names the app.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...models import ChangeKind
from .client import ListRef, SharePointClient
from .field_values import FieldValues, FieldValueStore, bounded
from .models import CHANGE_KINDS, SharePointChange
from .rows import changed_by


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
        """Add `fields`, `changedFields` and `fieldsBeforeUnknown` to the page's rows, in place,
        and remember the values read for the next page."""
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
            if after is None:  # deleted, now or by the time it was read: what was last known
                if before is not None:
                    row["fields"] = json.dumps(before)
                continue
            row["fields"] = json.dumps(after)
            if last_index[item_id] != index:
                continue  # it changed again later in this page: the difference goes there
            editor = read[item_id].editor
            if "changedBy" not in row and editor is not None:
                named = changed_by(editor.name, editor.email)
                row.update(named, **({"changedBySource": "item"} if named else {}))
            remembered[item_id] = {"values": after, "before": before, "read": row["RowKey"]}
            if before is None and item_id not in added_here:
                row["fieldsBeforeUnknown"] = True
                continue
            difference = _difference(before or {}, after)
            if difference:
                row["changedFields"] = json.dumps(difference)
        if remembered:
            self.store.write(listed.list_id, remembered, buckets)


def _difference(before: FieldValues, after: FieldValues) -> dict[str, dict[str, Any]]:
    return {
        name: {"before": before.get(name), "after": value}
        for name, value in after.items()
        if before.get(name) != value
    }
