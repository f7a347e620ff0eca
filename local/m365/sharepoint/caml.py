"""`POST lists(…)/GetItems` with an `SP.CamlQuery`: the CAML that reads given items' fields.

The emulator reads what a client asks of known items: `ViewFields`, `RowLimit`, and a `Where` of
`Eq` or `In` on `ID`. `In` takes at most 500 values, as in SharePoint Online, where more is
refused as past the list view threshold. Any other CAML is answered as SharePoint answers CAML it
cannot run, so a test never passes on a query the emulator only pretends to run.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any

from . import errors
from .errors import SharePointError
from .lookups import PERSON_FIELDS
from .model import Item, SpList

MAX_IN_VALUES = 500


@dataclass(frozen=True)
class CamlQuery:
    view_fields: tuple[str, ...]
    ids: frozenset[int] | None  # None: every item
    row_limit: int | None


def _cannot_complete() -> SharePointError:
    return SharePointError(
        400,
        "-2130575340, Microsoft.SharePoint.SPException",
        "Cannot complete this action.\n\nPlease try again.",
    )


def parse(view_xml: Any) -> CamlQuery:
    if not isinstance(view_xml, str):
        raise SharePointError(400, errors.ARGUMENT, "The query must be an SP.CamlQuery with a ViewXml.")
    try:
        view = ElementTree.fromstring(view_xml)  # noqa: S314 - the emulator's own test input
    except ElementTree.ParseError:
        raise _cannot_complete() from None
    if view.tag != "View":
        raise _cannot_complete()
    fields = tuple(ref.get("Name", "") for ref in view.findall("./ViewFields/FieldRef"))
    limit = (view.findtext("./RowLimit") or "").strip()
    return CamlQuery(fields, _ids(view.find("./Query/Where")), int(limit) if limit.isdigit() else None)


def _ids(where: ElementTree.Element | None) -> frozenset[int] | None:
    if where is None:
        return None
    conditions = list(where)
    field = conditions[0].find("FieldRef") if len(conditions) == 1 else None
    if field is None or conditions[0].tag not in ("Eq", "In") or field.get("Name", "").upper() != "ID":
        raise _cannot_complete()
    condition = conditions[0]
    values = condition.findall("./Values/Value") if condition.tag == "In" else condition.findall("./Value")
    if len(values) > MAX_IN_VALUES:
        raise SharePointError(
            500,
            errors.THROTTLED,
            "The attempted operation is prohibited because it exceeds the list view threshold.",
        )
    try:
        return frozenset(int((value.text or "").strip()) for value in values)
    except ValueError:
        raise _cannot_complete() from None


def run(query: CamlQuery, sp_list: SpList) -> list[Item]:
    found = sorted(
        (item for item in sp_list.items.values() if query.ids is None or item.id in query.ids),
        key=lambda item: item.id,
    )
    return found[: query.row_limit] if query.row_limit else found


def view(whole: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """An item's JSON (`whole`) as the view shows it: its `ViewFields`, a person field as its id
    (`EditorId`), as the REST answer carries it."""
    if not fields:
        return whole
    shown = {"Id": whole["Id"], "ID": whole["ID"]}
    for name in fields:
        key = f"{name}Id" if name in PERSON_FIELDS else name
        shown[key] = whole.get(key)
    return shown
