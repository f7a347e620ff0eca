"""`$select` and `$expand` on list items, as SharePoint reads them for person fields.

A person field (`Author`, `Editor`) looks up the site's users. `$select` may name its properties
(`Editor/EMail`) only beside `$expand=Editor`, and never the field bare: SharePoint refuses both
with "The query to field 'Editor' is not valid. …" before reading a row. An item carries the
field's id (`EditorId`) whatever is expanded. `*` selects what the item would show unselected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import INVALID_CLIENT_QUERY, SharePointError
from .model import SiteUser

PERSON_FIELDS = ("Author", "Editor")
USER_PROPERTIES = ("Id", "Title", "Name", "EMail")
SP_EXCEPTION = "-1, Microsoft.SharePoint.SPException"


@dataclass(frozen=True)
class Projection:
    select: tuple[str, ...]  # empty: everything
    expand: tuple[str, ...]


def _names(raw: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (raw or "").split(",") if name.strip())


def _not_valid(field: str) -> SharePointError:
    return SharePointError(
        400,
        SP_EXCEPTION,
        f"The query to field '{field}' is not valid. The $select query string must specify the target "
        f"fields and the $expand query string must contains {field}.",
    )


def _no_such(name: str) -> SharePointError:
    return SharePointError(400, INVALID_CLIENT_QUERY, f"The field or property '{name}' does not exist.")


def parse(select: str | None, expand: str | None) -> Projection:
    """The query's `$select` and `$expand`, refused as SharePoint refuses them."""
    projection = Projection(_names(select), _names(expand))
    for field in projection.expand:
        if field not in PERSON_FIELDS:
            raise _not_valid(field)
    for name in projection.select:
        field, _, property_ = name.partition("/")
        if field in PERSON_FIELDS and (not property_ or field not in projection.expand):
            raise _not_valid(field)
        if property_ and field not in PERSON_FIELDS:
            raise _not_valid(field)
        if property_ and property_ not in USER_PROPERTIES:
            raise _no_such(property_)
    return projection


def apply(projection: Projection, body: dict[str, Any], people: Mapping[str, SiteUser]) -> dict[str, Any]:
    """`body` (the item as it would show unselected) selected, with its person fields expanded
    from `people` (field -> site user)."""
    if not projection.select:
        shown = dict(body)
        for field in projection.expand:
            shown[field] = people[field].to_json()
        return shown
    shown = dict(body) if "*" in projection.select else {}
    for name in projection.select:
        field, _, property_ = name.partition("/")
        if property_:
            shown.setdefault(field, {})[property_] = people[field].to_json()[property_]
        elif name != "*":
            shown[name] = body.get(name)
    return shown
