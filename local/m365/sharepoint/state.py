"""The emulator's SharePoint Online, in memory: sites -> lists -> items, change log, subscriptions.

Keyed like the real service. All mutation happens on the server's event loop, one request at a
time, so no locks are needed.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock, ticks
from . import errors
from .errors import SharePointError
from .files import LibraryFiles
from .model import (
    CHANGE_ADD,
    CHANGE_DELETE,
    CHANGE_MOVE_AWAY,
    CHANGE_MOVE_INTO,
    CHANGE_RENAME,
    CHANGE_RESTORE,
    CHANGE_SYSTEM_UPDATE,
    CHANGE_UPDATE,
    DOCUMENT_LIBRARY,
    GENERIC_LIST,
    SHAREPOINT_APP,
    SYSTEM_ACCOUNT,
    Change,
    Item,
    PendingNotification,
    Quirks,
    RecycledItem,
    Site,
    SiteUser,
    SpList,
    sharepoint_time,
)
from .subscriptions import ListSubscriptions

CHANGE_LOG_RETENTION = timedelta(days=60)
DEFAULT_FETCH_LIMIT = 1000
MAX_FETCH_LIMIT = 2000

# SP.ChangeQuery: which flag asks for which change types, and every property the type defines.
QUERY_CHANGE_TYPES = {
    "Add": {CHANGE_ADD},
    "Update": {CHANGE_UPDATE},
    "DeleteObject": {CHANGE_DELETE},
    "Rename": {CHANGE_RENAME},
    "Move": {CHANGE_MOVE_AWAY, CHANGE_MOVE_INTO},
    "Restore": {CHANGE_RESTORE},
    "SystemUpdate": {CHANGE_SYSTEM_UPDATE},
}
CHANGE_QUERY_PROPERTIES = frozenset(
    {
        "Activity", "Add", "Alert", "AppConsentPrincipal", "ChangeTokenEnd", "ChangeTokenStart",
        "ContentType", "DeleteObject", "FetchLimit", "Field", "File", "Folder", "Group",
        "GroupMembershipAdd", "GroupMembershipDelete", "IgnoreStartTokenNotFoundError", "Item",
        "LatestFirst", "List", "Move", "Navigation", "RecursiveAll", "Rename", "RequireSecurityTrim",
        "Restore", "RoleAssignmentAdd", "RoleAssignmentDelete", "RoleDefinitionAdd",
        "RoleDefinitionDelete", "RoleDefinitionUpdate", "SecurityPolicy", "Site", "SystemUpdate",
        "Update", "User", "View", "Web",
    }
)  # fmt: skip


# The app whose request is being served, and the user a delegated token acts for (set per
# request: each runs in a context of its own).
ACTING_APP: ContextVar[str | None] = ContextVar("acting_app", default=None)
ACTING_USER: ContextVar[str | None] = ContextVar("acting_user", default=None)
# Site users get ids from here, as a site's user information list numbers its entries.
FIRST_USER_ID = 7


class SharePointState(LibraryFiles, ListSubscriptions):
    """The tenant's SharePoint: sites, lists, items, the change log, subscriptions, and the
    notifications waiting for delivery."""

    def __init__(self, tenant_id: str, clock: Clock) -> None:
        self.tenant_id = tenant_id
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.quirks = Quirks()
        self.sites: dict[str, Site] = {}
        self.recycle_bin: dict[str, RecycledItem] = {}
        self.change_number = 0
        self.pending: list[PendingNotification] = []
        self.users: dict[str, SiteUser] = {}

    # --- sites and lists ---------------------------------------------------------------------

    def site(self, path: str) -> Site:
        """A site exists on first use, as if an admin had created it."""
        if path not in self.sites:
            self.sites[path] = Site(path=path, id=str(uuid.uuid4()), web_id=str(uuid.uuid4()))
        return self.sites[path]

    def create_list(
        self, site_path: str, title: str, base_template: int, list_id: str | None = None
    ) -> SpList:
        site = self.site(site_path)
        if not title:
            raise SharePointError(400, errors.ARGUMENT, "The list title must not be empty.")
        if base_template not in (GENERIC_LIST, DOCUMENT_LIBRARY):
            raise SharePointError(400, errors.ARGUMENT, f"Invalid list template: {base_template}.")
        if any(lst.title.lower() == title.lower() for lst in site.lists.values()):
            raise SharePointError(
                409,
                errors.DUPLICATE_LIST,
                "A list, survey, discussion board, or document library with the specified title "
                "already exists in this Web site.  Please choose another title.",
            )
        url_name = "".join(c for c in title if c.isalnum() or c in "-_")
        root = site.url_of(url_name if base_template == DOCUMENT_LIBRARY else f"Lists/{url_name}")
        new_list = SpList(
            id=list_id or str(uuid.uuid4()),
            title=title,
            base_template=base_template,
            created=self.clock.now(),
            root_folder=root,
        )
        site.lists[new_list.id] = new_list
        return new_list

    def find_list(self, site_path: str, *, list_id: str | None = None, title: str | None = None) -> SpList:
        site = self.site(site_path)
        if list_id is not None:
            found = site.lists.get(list_id.lower().strip("{}"))
        else:
            found = next(
                (
                    candidate
                    for candidate in site.lists.values()
                    if candidate.title.lower() == (title or "").lower()
                ),
                None,
            )
        if found is None:
            raise errors.list_not_found()
        return found

    def list_json(self, site: Site, sp_list: SpList) -> dict[str, Any]:
        return {
            "Id": sp_list.id,
            "Title": sp_list.title,
            "BaseTemplate": sp_list.base_template,
            "BaseType": 1 if sp_list.is_library else 0,
            "ItemCount": len(sp_list.items),
            "Created": sharepoint_time(sp_list.created),
            "ParentWebUrl": site.path,
            "RootFolder": {"ServerRelativeUrl": sp_list.root_folder},
            "CurrentChangeToken": {"StringValue": self.current_change_token(sp_list)},
            "ListItemEntityTypeFullName": sp_list.item_entity_type,
            "Hidden": False,
            "EnableVersioning": sp_list.enable_versioning,
            "MajorVersionLimit": 500 if sp_list.is_library else 50,
        }

    def current_change_token(self, sp_list: SpList) -> str:
        return f"1;3;{sp_list.id};{ticks(self.clock.now())};{self.change_number}"

    # --- items ---------------------------------------------------------------------------------

    def add_item(self, site_path: str, sp_list: SpList, fields: dict[str, Any]) -> Item:
        if sp_list.is_library:
            raise SharePointError(
                400,
                errors.INVALID_OPERATION,
                "To add an item to a document library, use SPFileCollection.Add()",
            )
        now = self.clock.now()
        item = Item(id=sp_list.next_item_id, fields=_writable(fields), created=now, modified=now)
        sp_list.next_item_id += 1
        sp_list.items[item.id] = item
        self._record_change(site_path, sp_list, CHANGE_ADD, item)
        return item

    def update_item(self, site_path: str, sp_list: SpList, item_id: int, fields: dict[str, Any]) -> None:
        item = self.get_item(sp_list, item_id)
        fields = _writable(fields)
        new_name = fields.pop("FileLeafRef", None)
        if new_name is not None and item.file is not None and new_name != item.file.name:
            self._check_file_name(sp_list, item.file.folder, new_name)
            item.file.name = new_name
            item.modified = self.clock.now()
            self._record_change(site_path, sp_list, CHANGE_RENAME, item)
        if fields:
            item.fields.update(fields)
            item.modified = self.clock.now()
            self._record_change(site_path, sp_list, CHANGE_UPDATE, item)

    def delete_item(self, site_path: str, sp_list: SpList, item_id: int) -> None:
        item = self.get_item(sp_list, item_id)
        del sp_list.items[item_id]
        self._record_change(site_path, sp_list, CHANGE_DELETE, item)

    def recycle_item(self, site_path: str, sp_list: SpList, item_id: int) -> str:
        item = self.get_item(sp_list, item_id)
        del sp_list.items[item_id]
        recycled = RecycledItem(str(uuid.uuid4()), site_path, sp_list.id, item)
        self.recycle_bin[recycled.id] = recycled
        self._record_change(site_path, sp_list, CHANGE_DELETE, item)
        return recycled.id

    def restore(self, recycle_id: str) -> None:
        recycled = self.recycle_bin.pop(recycle_id.lower().strip("{}"), None)
        if recycled is None:
            raise errors.item_not_found()
        sp_list = self.find_list(recycled.site_path, list_id=recycled.list_id)
        sp_list.items[recycled.item.id] = recycled.item
        self._record_change(recycled.site_path, sp_list, CHANGE_RESTORE, recycled.item)

    def get_item(self, sp_list: SpList, item_id: int) -> Item:
        if item_id not in sp_list.items:
            raise errors.item_not_found()
        return sp_list.items[item_id]

    def items_modified_since(self, sp_list: SpList, moment: datetime) -> list[Item]:
        return [item for item in sp_list.items.values() if item.modified >= moment]

    # --- change log ----------------------------------------------------------------------------

    def _acting(self) -> tuple[SiteUser, str | None, str | None]:
        """Who is writing: the site user an item names as its editor, and the change log's
        Editor claim and EditorEmailHint. An app-only caller is `SharePoint App` on the item and
        itself (`i:0i.t|ms.sp.ext|{app}@{tenant}`) in the change log."""
        user, app_id = ACTING_USER.get(), ACTING_APP.get()
        if user is not None:
            claim = f"i:0#.f|membership|{user}"
            if claim not in self.users:
                self.users[claim] = SiteUser(FIRST_USER_ID + len(self.users), user.split("@")[0], claim, user)
            return self.users[claim], claim, user
        if app_id is not None:
            return SHAREPOINT_APP, f"i:0i.t|ms.sp.ext|{app_id}@{self.tenant_id}", None
        return SYSTEM_ACCOUNT, None, None

    def _record_change(self, site_path: str, sp_list: SpList, change_type: int, item: Item) -> None:
        self.change_number += 1
        if change_type != CHANGE_ADD:
            item.version += 1
        writer, editor, email_hint = self._acting()
        if change_type == CHANGE_ADD:
            item.author = writer
        if change_type != CHANGE_DELETE:
            item.editor = writer
        now = self.clock.now()
        if change_type in (CHANGE_ADD, CHANGE_UPDATE):
            item.keep_version(now, sp_list.enable_versioning)
        sp_list.changes.append(
            Change(
                self.change_number,
                now,
                change_type,
                item.id,
                sp_list.id,
                item.unique_id,
                item.file.server_relative_url if item.file is not None else None,
                editor,
                email_hint,
            )
        )
        self.expire_subscriptions(sp_list)
        for subscription in sp_list.subscriptions.values():
            self.pending.append(PendingNotification(subscription.id, site_path, sp_list.id, due=0.0))

    def get_changes(self, sp_list: SpList, query: dict[str, Any]) -> list[Change]:
        """`GetChanges` with SP.ChangeQuery's rules: unknown properties, FetchLimit and tokens
        are refused as SharePoint refuses them."""
        for name in query:
            if name not in CHANGE_QUERY_PROPERTIES and not name.startswith(("__", "odata.")):
                raise errors.unknown_property(name, "SP.ChangeQuery")
        limit = query.get("FetchLimit", DEFAULT_FETCH_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 < limit <= MAX_FETCH_LIMIT:
            raise errors.argument_out_of_range("FetchLimit")
        start = (query.get("ChangeTokenStart") or {}).get("StringValue")
        after = (
            self._change_number_after(sp_list, start, bool(query.get("IgnoreStartTokenNotFoundError")))
            if start
            else 0
        )
        end = (query.get("ChangeTokenEnd") or {}).get("StringValue")
        until = self._change_number_after(sp_list, end, True) if end else self.change_number
        if not query.get("Item"):
            return []
        wanted = set().union(*(types for flag, types in QUERY_CHANGE_TYPES.items() if query.get(flag)))
        oldest = self.clock.now() - CHANGE_LOG_RETENTION
        selected = [
            c
            for c in sp_list.changes
            if after < c.number <= until and c.change_type in wanted and c.time >= oldest
        ]
        if query.get("LatestFirst"):
            selected.reverse()
        return selected[:limit]

    def _change_number_after(self, sp_list: SpList, token: Any, accept_expired: bool = False) -> int:
        """The change number a token stands for; a token older than the log is refused unless
        the query sets `IgnoreStartTokenNotFoundError` (then the log is read from its start)."""
        parts = token.split(";") if isinstance(token, str) else []
        try:
            version, scope, scope_id, token_ticks, number = (
                int(parts[0]), int(parts[1]), parts[2], int(parts[3]), int(parts[4])
            )  # fmt: skip
        except (IndexError, ValueError):
            raise errors.malformed_change_token() from None
        if len(parts) != 5 or version != 1 or scope_id.lower().strip("{}") != sp_list.id or scope != 3:
            raise errors.change_token_of_another_object()
        if token_ticks < ticks(self.clock.now() - CHANGE_LOG_RETENTION):
            if accept_expired:
                return 0
            if not self.quirks.accept_expired_change_tokens:
                raise errors.change_token_too_old()
        return number


def _writable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in ("Id", "ID", "__metadata", "odata.type")}
