"""The emulator's SharePoint Online, in memory: sites -> lists -> items, change log, subscriptions.

Keyed like the real service. All mutation happens on the server's event loop, one request at a
time, so no locks are needed.
"""

from __future__ import annotations

import math
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import errors
from .errors import SharePointError
from .graph_state import GraphTenant

MAX_SUBSCRIPTION_LIFETIME = timedelta(days=180)
CHANGE_LOG_RETENTION = timedelta(days=60)
DEFAULT_FETCH_LIMIT = 1000
MAX_FETCH_LIMIT = 2000
TOKEN_LIFETIME_SECONDS = 3599
DEFAULT_APP_ID = "00000000-0000-0000-0000-0000000000a1"
_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)

GENERIC_LIST, DOCUMENT_LIBRARY = 100, 101

# SP.ChangeType
CHANGE_ADD = 1
CHANGE_UPDATE = 2
CHANGE_DELETE = 3
CHANGE_RENAME = 4
CHANGE_MOVE_AWAY = 5
CHANGE_MOVE_INTO = 6
CHANGE_RESTORE = 7
CHANGE_SYSTEM_UPDATE = 15

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
        "Add", "Alert", "ChangeTokenEnd", "ChangeTokenStart", "ContentType", "DeleteObject",
        "FetchLimit", "Field", "File", "Folder", "Group", "GroupMembershipAdd",
        "GroupMembershipDelete", "Item", "LatestFirst", "List", "Move", "Navigation",
        "RecursiveAll", "Rename", "RequireSecurityTrim", "Restore", "RoleAssignmentAdd",
        "RoleAssignmentDelete", "RoleDefinitionAdd", "RoleDefinitionDelete",
        "RoleDefinitionUpdate", "SecurityPolicy", "Site", "SystemUpdate", "Update", "User",
        "View", "Web",
    }
)  # fmt: skip


def ticks(moment: datetime) -> int:
    """.NET ticks (100 ns since 0001-01-01 UTC), as SharePoint writes them in change tokens."""
    delta = moment - _DOTNET_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def sharepoint_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def notification_time(moment: datetime) -> str:
    """Notifications carry seven fractional digits: `2016-04-30T17:27:00.0000000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


class Clock:
    """Real time plus an offset that tests can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class StoredFile:
    """What a document library keeps beside a file's list item."""

    name: str
    folder: str  # server-relative URL of the folder that holds it
    content: bytes
    checked_out_by: str | None = None
    major_version: int = 1

    @property
    def server_relative_url(self) -> str:
        return f"{self.folder}/{self.name}"


@dataclass
class Item:
    id: int
    fields: dict[str, Any]
    created: datetime
    modified: datetime
    unique_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    file: StoredFile | None = None

    def to_json(self) -> dict[str, Any]:
        body = {
            **self.fields,
            "Id": self.id,
            "ID": self.id,
            "GUID": self.unique_id,
            "Created": sharepoint_time(self.created),
            "Modified": sharepoint_time(self.modified),
        }
        if self.file is not None:
            body |= {
                "FileLeafRef": self.file.name,
                "FileRef": self.file.server_relative_url,
                "FileDirRef": self.file.folder,
                "FSObjType": 0,
            }
        return body

    def file_json(self) -> dict[str, Any]:
        assert self.file is not None
        return {
            "Name": self.file.name,
            "ServerRelativeUrl": self.file.server_relative_url,
            "UniqueId": self.unique_id,
            "Length": str(len(self.file.content)),
            "CheckOutType": 2 if self.file.checked_out_by is None else 0,
            "MajorVersion": self.file.major_version,
            "TimeCreated": sharepoint_time(self.created),
            "TimeLastModified": sharepoint_time(self.modified),
        }


@dataclass
class Change:
    number: int
    time: datetime
    change_type: int
    item_id: int
    list_id: str
    unique_id: str
    server_relative_url: str | None = None

    @property
    def token(self) -> str:
        return f"1;3;{self.list_id};{ticks(self.time)};{self.number}"


@dataclass
class Subscription:
    id: str
    list_id: str
    notification_url: str
    expiration: datetime
    client_state: str | None
    app_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "clientState": self.client_state,
            "expirationDateTime": sharepoint_time(self.expiration),
            "id": self.id,
            "notificationUrl": self.notification_url,
            "resource": self.list_id,
            "resourceData": None,
        }


@dataclass
class SpList:
    id: str
    title: str
    base_template: int
    created: datetime
    root_folder: str
    items: dict[int, Item] = field(default_factory=dict)
    next_item_id: int = 1
    changes: list[Change] = field(default_factory=list)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)

    @property
    def is_library(self) -> bool:
        return self.base_template == DOCUMENT_LIBRARY


@dataclass
class Site:
    path: str
    id: str
    web_id: str
    lists: dict[str, SpList] = field(default_factory=dict)

    def url_of(self, relative: str) -> str:
        """A server-relative URL below this site ('/' for the root site)."""
        return f"{self.path.rstrip('/')}/{relative}"


@dataclass
class RecycledItem:
    id: str
    site_path: str
    list_id: str
    item: Item


@dataclass
class Fault:
    status: int
    retry_after: int | None
    remaining: int
    operation: str
    # Only requests whose path contains this (e.g. a list id), so that another test's leftover
    # work on another list cannot use up a fault meant for this one.
    path_contains: str = ""
    # With status 200: answer normally, this many seconds late (a slow tenant).
    delay_seconds: float = 0.0
    # Matching requests answered normally before the fault begins (the second page of a read).
    after: int = 0


@dataclass
class ThrottleWindow:
    """After a Retry-After: the same app may not send the same request again before `until`
    (monotonic). After a 429, no request at all: SharePoint and Graph count an app's usage per
    tenant across every endpoint, and "throttle any further requests from that client"."""

    service: str
    operation: str
    path: str
    app_id: str | None
    until: float
    status: int

    @property
    def whole_app(self) -> bool:
        return self.status == 429

    def covers(self, service: str, operation: str, path: str, app_id: str | None) -> bool:
        if (self.service, self.app_id) != (service, app_id):
            return False
        return self.whole_app or (self.operation, self.path) == (operation, path)


@dataclass
class PendingNotification:
    subscription_id: str
    site_path: str
    list_id: str
    due: float
    attempts: int = 0


@dataclass
class Quirks:
    """Behaviours SharePoint Online has been seen to show, switched on by tests."""

    # sp-dev-docs issue 10389: a token older than the change log is accepted without an error.
    accept_expired_change_tokens: bool = False


class SharePointTenant:
    def __init__(self, tenant_id: str | None = None) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.tokens: dict[str, tuple[float, str]] = {}
        self.graph = GraphTenant(self.tenant_id)
        self.reset()

    def reset(self) -> None:
        """Forget every site, list, subscription, fault and counter (issued tokens stay valid)."""
        self.clock = Clock()
        self.quirks = Quirks()
        self.sites: dict[str, Site] = {}
        self.recycle_bin: dict[str, RecycledItem] = {}
        self.change_number = 0
        self.calls: Counter[str] = Counter()
        self.delivery: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.throttle_windows: list[ThrottleWindow] = []
        # Requests that came back inside their own Retry-After window: each was throttled again.
        self.early_retries = 0
        # Any request of an app inside a window that throttles it as a whole (after a 429).
        self.requests_while_throttled = 0
        self.pending: list[PendingNotification] = []
        self.graph.reset()

    # --- sites and lists ---------------------------------------------------------------------

    def site(self, path: str) -> Site:
        """A site exists on first use, as if an admin had created it."""
        if path not in self.sites:
            self.sites[path] = Site(path=path, id=str(uuid.uuid4()), web_id=str(uuid.uuid4()))
        return self.sites[path]

    def create_list(self, site_path: str, title: str, base_template: int) -> SpList:
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
            id=str(uuid.uuid4()),
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

    # --- files in document libraries -----------------------------------------------------------

    def library_of(self, site_path: str, server_relative_url: str) -> SpList:
        """The library whose root folder holds the URL (a folder or a file)."""
        site = self.site(site_path)
        for sp_list in site.lists.values():
            root = sp_list.root_folder.lower()
            url = server_relative_url.lower().rstrip("/")
            if sp_list.is_library and (url == root or url.startswith(root + "/")):
                return sp_list
        raise errors.file_not_found(server_relative_url)

    def find_file(self, site_path: str, server_relative_url: str) -> tuple[SpList, Item]:
        sp_list = self.library_of(site_path, server_relative_url)
        for item in sp_list.items.values():
            if item.file is not None and item.file.server_relative_url.lower() == server_relative_url.lower():
                return sp_list, item
        raise errors.file_not_found(server_relative_url)

    def add_file(self, site_path: str, folder: str, name: str, content: bytes, *, overwrite: bool) -> Item:
        sp_list = self.library_of(site_path, folder)
        folder = folder.rstrip("/")
        existing = next(
            (
                item
                for item in sp_list.items.values()
                if item.file is not None
                and item.file.server_relative_url.lower() == f"{folder}/{name}".lower()
            ),
            None,
        )
        now = self.clock.now()
        if existing is not None:
            assert existing.file is not None
            if not overwrite:
                raise errors.file_exists(existing.file.server_relative_url)
            if existing.file.checked_out_by is not None:
                raise errors.file_checked_out(existing.file.server_relative_url)
            existing.file.content = content
            existing.file.major_version += 1
            existing.modified = now
            self._record_change(site_path, sp_list, CHANGE_UPDATE, existing)
            return existing
        self._check_file_name(sp_list, folder, name)
        item = Item(
            id=sp_list.next_item_id,
            fields={"Title": None},
            created=now,
            modified=now,
            file=StoredFile(name=name, folder=folder, content=content),
        )
        sp_list.next_item_id += 1
        sp_list.items[item.id] = item
        self._record_change(site_path, sp_list, CHANGE_ADD, item)
        return item

    def check_out(self, site_path: str, server_relative_url: str, app_id: str) -> None:
        sp_list, item = self.find_file(site_path, server_relative_url)
        assert item.file is not None
        if item.file.checked_out_by is not None:
            raise errors.file_checked_out(server_relative_url)
        item.file.checked_out_by = app_id
        # Checking out changes no content and no version: SharePoint logs a system update.
        self._record_change(site_path, sp_list, CHANGE_SYSTEM_UPDATE, item)

    def check_in(self, site_path: str, server_relative_url: str) -> None:
        sp_list, item = self.find_file(site_path, server_relative_url)
        assert item.file is not None
        if item.file.checked_out_by is None:
            raise errors.file_not_checked_out(server_relative_url)
        item.file.checked_out_by = None
        item.file.major_version += 1
        item.modified = self.clock.now()
        self._record_change(site_path, sp_list, CHANGE_UPDATE, item)

    def move_file(self, site_path: str, server_relative_url: str, new_url: str, *, overwrite: bool) -> None:
        source_list, item = self.find_file(site_path, server_relative_url)
        assert item.file is not None
        folder, _, name = new_url.rstrip("/").rpartition("/")
        target_list = self.library_of(site_path, folder)
        if any(
            other.file is not None and other.file.server_relative_url.lower() == new_url.lower()
            for other in target_list.items.values()
        ):
            if not overwrite:
                raise errors.file_exists(new_url)
            target_list.items = {
                key: other
                for key, other in target_list.items.items()
                if other.file is None or other.file.server_relative_url.lower() != new_url.lower()
            }
        del source_list.items[item.id]
        self._record_change(site_path, source_list, CHANGE_MOVE_AWAY, item)
        item.file.folder, item.file.name = folder, name
        item.modified = self.clock.now()
        if target_list is not source_list:
            item.id = target_list.next_item_id
            target_list.next_item_id += 1
        target_list.items[item.id] = item
        self._record_change(site_path, target_list, CHANGE_MOVE_INTO, item)

    def _check_file_name(self, sp_list: SpList, folder: str, name: str) -> None:
        if not name or any(c in name for c in '"*:<>?/\\|') or name.startswith(" ") or ".." in name:
            raise SharePointError(400, errors.ARGUMENT, f"The file name '{name}' is not valid.")
        wanted = f"{folder}/{name}".lower()
        if any(
            i.file is not None and i.file.server_relative_url.lower() == wanted
            for i in sp_list.items.values()
        ):
            raise errors.file_exists(f"{folder}/{name}")

    # --- change log ----------------------------------------------------------------------------

    def _record_change(self, site_path: str, sp_list: SpList, change_type: int, item: Item) -> None:
        self.change_number += 1
        sp_list.changes.append(
            Change(
                self.change_number,
                self.clock.now(),
                change_type,
                item.id,
                sp_list.id,
                item.unique_id,
                item.file.server_relative_url if item.file is not None else None,
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
        after = self._change_number_after(sp_list, start) if start else 0
        if not query.get("Item"):
            return []
        wanted = set().union(*(types for flag, types in QUERY_CHANGE_TYPES.items() if query.get(flag)))
        oldest = self.clock.now() - CHANGE_LOG_RETENTION
        selected = [
            c for c in sp_list.changes if c.number > after and c.change_type in wanted and c.time >= oldest
        ]
        return selected[:limit]

    def _change_number_after(self, sp_list: SpList, token: Any) -> int:
        parts = token.split(";") if isinstance(token, str) else []
        try:
            version, scope, scope_id, token_ticks, number = (
                int(parts[0]), int(parts[1]), parts[2], int(parts[3]), int(parts[4])
            )  # fmt: skip
        except (IndexError, ValueError):
            raise errors.malformed_change_token() from None
        if len(parts) != 5 or version != 1 or scope_id.lower().strip("{}") != sp_list.id or scope != 3:
            raise errors.change_token_of_another_object()
        if (
            token_ticks < ticks(self.clock.now() - CHANGE_LOG_RETENTION)
            and not self.quirks.accept_expired_change_tokens
        ):
            raise errors.change_token_too_old()
        return number

    # --- subscriptions -------------------------------------------------------------------------

    def check_subscription_request(self, body: dict[str, Any]) -> tuple[str, datetime, str | None]:
        notification_url = body.get("notificationUrl")
        if not isinstance(notification_url, str) or not notification_url.startswith(("https://", "http://")):
            raise SharePointError(400, errors.ARGUMENT, "The notificationUrl must be an absolute URL.")
        now = self.clock.now()
        if body.get("expirationDateTime") is None:
            expiration = now + MAX_SUBSCRIPTION_LIFETIME
        else:
            expiration = _parse_time(body.get("expirationDateTime"))
        if expiration <= now:
            raise SharePointError(
                400, errors.ARGUMENT_OUT_OF_RANGE, "The expirationDateTime must be in the future."
            )
        if expiration > now + MAX_SUBSCRIPTION_LIFETIME:
            raise SharePointError(
                400,
                errors.ARGUMENT_OUT_OF_RANGE,
                "The expirationDateTime must not be more than 180 days from now.",
            )
        client_state = body.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 255):
            raise SharePointError(400, errors.ARGUMENT, "The clientState is not valid.")
        return notification_url, expiration, client_state

    def add_subscription(
        self,
        sp_list: SpList,
        notification_url: str,
        expiration: datetime,
        client_state: str | None,
        app_id: str,
    ) -> Subscription:
        subscription = Subscription(
            str(uuid.uuid4()), sp_list.id, notification_url, expiration, client_state, app_id
        )
        sp_list.subscriptions[subscription.id] = subscription
        return subscription

    def get_subscription(self, sp_list: SpList, subscription_id: str, app_id: str) -> Subscription:
        """Only the app that created a subscription may read, renew or delete it."""
        self.expire_subscriptions(sp_list)
        subscription = sp_list.subscriptions.get(subscription_id.lower().strip("{}"))
        if subscription is None:
            raise errors.subscription_not_found(subscription_id)
        if subscription.app_id != app_id:
            raise errors.access_denied()
        return subscription

    def renew_subscription(
        self, sp_list: SpList, subscription_id: str, body: dict[str, Any], app_id: str
    ) -> None:
        subscription = self.get_subscription(sp_list, subscription_id, app_id)
        if "expirationDateTime" in body:
            expiration = _parse_time(body["expirationDateTime"])
            now = self.clock.now()
            if not now < expiration <= now + MAX_SUBSCRIPTION_LIFETIME:
                raise SharePointError(
                    400,
                    errors.ARGUMENT_OUT_OF_RANGE,
                    "The expirationDateTime must be in the future and not more than 180 days from now.",
                )
            subscription.expiration = expiration
        if "notificationUrl" in body:
            subscription.notification_url = body["notificationUrl"]

    def delete_subscription(self, sp_list: SpList, subscription_id: str, app_id: str) -> None:
        self.get_subscription(sp_list, subscription_id, app_id)
        del sp_list.subscriptions[subscription_id.lower().strip("{}")]

    def find_subscription(self, subscription_id: str) -> tuple[Site, SpList, Subscription] | None:
        for site in self.sites.values():
            for sp_list in site.lists.values():
                if subscription_id in sp_list.subscriptions:
                    return site, sp_list, sp_list.subscriptions[subscription_id]
        return None

    def expire_subscriptions(self, sp_list: SpList) -> None:
        """SharePoint removes a subscription once it has expired."""
        now = self.clock.now()
        for subscription_id in [s.id for s in sp_list.subscriptions.values() if s.expiration <= now]:
            del sp_list.subscriptions[subscription_id]

    # --- access tokens and injected faults -----------------------------------------------------

    def issue_token(self, wall_time: float, app_id: str = DEFAULT_APP_ID) -> str:
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (wall_time + TOKEN_LIFETIME_SECONDS, app_id)
        return token

    def app_of(self, token: str, wall_time: float) -> str | None:
        """The app a valid bearer token was issued to; None for a missing or expired token."""
        issued = self.tokens.get(token)
        if issued is None or wall_time >= issued[0]:
            return None
        return issued[1]

    def take_fault(
        self, service: str, operation: str, path: str = "", app_id: str | None = None
    ) -> Fault | None:
        """The injected fault this request to `service` (SharePoint or Graph) meets, if any. As in
        SharePoint and Graph, an app that asks again before a Retry-After has passed is answered
        the same again (and counted): after a 429, whatever it asks; after a 503, the same request."""
        now = time.monotonic()
        self.throttle_windows = [w for w in self.throttle_windows if w.until > now]
        for window in self.throttle_windows:
            if window.covers(service, operation, path, app_id):
                if (window.operation, window.path) == (operation, path):
                    self.early_retries += 1
                if window.whole_app:
                    self.requests_while_throttled += 1
                return Fault(window.status, max(1, math.ceil(window.until - now)), 0, operation)
        for fault in self.faults:
            if _matches(fault.operation, fault.path_contains, operation, path) and fault.remaining > 0:
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.remaining -= 1
                if fault.retry_after is not None:
                    until = now + fault.retry_after
                    self.throttle_windows.append(
                        ThrottleWindow(service, operation, path, app_id, until, fault.status)
                    )
                return fault
        return None


def _matches(fault_operation: str, path_contains: str, operation: str, path: str) -> bool:
    return fault_operation in ("*", operation) and path_contains.lower() in path.lower()


def _writable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in ("Id", "ID", "__metadata", "odata.type")}


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise SharePointError(400, errors.ARGUMENT, "The expirationDateTime is required.")
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        # .NET writes up to seven fractional digits; Python reads six.
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SharePointError(400, errors.ARGUMENT, f"'{value}' is not a valid date and time.") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
