"""What the emulator's SharePoint keeps: sites, lists, items and files, changes, subscriptions,
and how SharePoint writes them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..clock import ticks

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


def sharepoint_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def notification_time(moment: datetime) -> str:
    """Notifications carry seven fractional digits: `2016-04-30T17:27:00.0000000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


@dataclass(frozen=True)
class SiteUser:
    """An entry of the site's user information list: what a person field (`Author`, `Editor`)
    looks up, and what `$expand` shows of it."""

    id: int
    title: str
    name: str  # the claim: i:0#.f|membership|ann@contoso.com
    email: str

    def to_json(self) -> dict[str, Any]:
        return {"Id": self.id, "Title": self.title, "Name": self.name, "EMail": self.email}


# An app-only write names this principal as the item's editor, whichever app wrote: only the
# change log's Editor names the app itself.
SHAREPOINT_APP = SiteUser(
    1073741822, "SharePoint App", "i:0i.t|00000003-0000-0ff1-ce00-000000000000|app@sharepoint", ""
)
SYSTEM_ACCOUNT = SiteUser(1073741823, "System Account", "SHAREPOINT\\system", "")


@dataclass
class StoredFile:
    """What a document library keeps beside a file's list item."""

    name: str
    folder: str  # server-relative URL of the folder that holds it
    content: bytes
    checked_out_by: str | None = None
    major_version: int = 1
    is_folder: bool = False

    @property
    def server_relative_url(self) -> str:
        return f"{self.folder}/{self.name}"


@dataclass(frozen=True)
class ItemVersion:
    """One version of an item, as SharePoint keeps it on every add and update when its list keeps
    versions: the fields as they were then, and who wrote them."""

    number: int
    created: datetime
    fields: dict[str, Any]
    editor: SiteUser

    def to_json(self, current: bool) -> dict[str, Any]:
        return {
            **self.fields,
            "Created": sharepoint_time(self.created),
            "IsCurrentVersion": current,
            "VersionId": self.number * 512,
            "VersionLabel": f"{self.number}.0",
            "Editor": {
                "LookupId": self.editor.id,
                "LookupValue": self.editor.title,
                "Email": self.editor.email,
            },
        }


@dataclass
class Item:
    id: int
    fields: dict[str, Any]
    created: datetime
    modified: datetime
    unique_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    file: StoredFile | None = None
    version: int = 1  # the item's ETag: every write moves it on
    author: SiteUser = SYSTEM_ACCOUNT
    editor: SiteUser = SYSTEM_ACCOUNT
    # Oldest first; with versioning off, only the current one.
    history: list[ItemVersion] = field(default_factory=list)

    def keep_version(self, at: datetime, versioning: bool) -> None:
        number = self.history[-1].number + 1 if self.history else 1
        snapshot = ItemVersion(number, at, dict(self.fields), self.editor)
        self.history = [*self.history, snapshot] if versioning else [snapshot]

    def to_json(self) -> dict[str, Any]:
        body = {
            **self.fields,
            "Id": self.id,
            "ID": self.id,
            "GUID": self.unique_id,
            "Created": sharepoint_time(self.created),
            "Modified": sharepoint_time(self.modified),
            "AuthorId": self.author.id,
            "EditorId": self.editor.id,
        }
        if self.file is not None:
            body |= {
                "FileLeafRef": self.file.name,
                "FileRef": self.file.server_relative_url,
                "FileDirRef": self.file.folder,
                "FSObjType": 1 if self.file.is_folder else 0,
            }
        return body

    def folder_json(self) -> dict[str, Any]:
        assert self.file is not None
        return {
            "Exists": True,
            "Name": self.file.name,
            "ServerRelativeUrl": self.file.server_relative_url,
            "UniqueId": self.unique_id,
            "TimeCreated": sharepoint_time(self.created),
            "TimeLastModified": sharepoint_time(self.modified),
        }

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
    # SP.ChangeItem's Editor: the claim of who made it (a user's, or an app-only caller's naming
    # the app) and, for a user, EditorEmailHint; SharePoint often leaves them empty (sp-dev-docs
    # issue 10017: the omitChangeEditors quirk).
    editor: str | None = None
    editor_email_hint: str | None = None

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
    # SharePoint Online keeps versions of new lists and libraries by default.
    enable_versioning: bool = True

    @property
    def is_library(self) -> bool:
        return self.base_template == DOCUMENT_LIBRARY

    @property
    def item_entity_type(self) -> str:
        """`ListItemEntityTypeFullName`: `SP.Data.TasksListItem`, `SP.Data.Shared_x0020_DocumentsItem`
        (the title, first letter upper case, other characters than letters and digits escaped)."""
        name = "".join(c if c.isalnum() else f"_x{ord(c):04x}_" for c in self.title)
        name = name[:1].upper() + name[1:]
        return f"SP.Data.{name}{'Item' if self.is_library else 'ListItem'}"


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
    # sp-dev-docs issue 10017: GetChanges leaves SP.ChangeItem's Editor and EditorEmailHint empty.
    omit_change_editors: bool = False
