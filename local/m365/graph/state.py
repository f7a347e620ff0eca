"""The emulator's Microsoft Graph, in memory: users with a OneDrive, mail folders and a calendar,
delta queries over each, and change-notification subscriptions.

Keyed like the real service: users by id or userPrincipalName; each user's drive, folders and
calendar exist on first use. Every change to a collection (a drive, a mail folder, a calendar) is
journaled with a sequence number; delta links carry the sequence they stand at, so a delta query
returns each object changed since then once, in its current state or as removed.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .errors import GraphError, bad_request, not_found
from .model import (
    Drive,
    DriveItem,
    GraphSubscription,
    Journal,
    OutlookItem,
    PendingGraphNotification,
    User,
)
from .rich import SigningKey
from .teams_model import TeamsState


class GraphTenant:
    def __init__(self, tenant_id: str, signing_key: SigningKey | None = None) -> None:
        self.tenant_id = tenant_id
        # Outlives a reset, as the identity platform's keys outlive a test: the service caches them.
        # One for every tenant: the identity platform publishes one set of keys.
        self.signing_key = signing_key or SigningKey()
        self.teams = TeamsState()
        self.reset()

    def reset(self) -> None:
        self.users: dict[str, User] = {}
        self.subscriptions: dict[str, GraphSubscription] = {}
        self.sequence = 0
        # Delta links issued before this generation answer 410 Gone (a test ends their life).
        self.delta_generation = 0
        # How an expired Outlook link answers: 410 with a Location, or (as Outlook may) another 4xx
        # such as 400 syncStateNotFound, without one.
        self.outlook_expiry = (410, "resyncRequired")
        # Seconds Graph holds a subscription's new notifications back ("*": every subscription's):
        # a drive or list notification may come up to 6 hours late (2026-09).
        self.notification_delays: dict[str, float] = {}
        self.pending: list[PendingGraphNotification] = []
        self.teams.reset()

    # --- users and their collections -------------------------------------------------------------

    def user(self, key: str, now: datetime) -> User:
        """A user exists on first use, by id or userPrincipalName."""
        lowered = key.lower()
        for user in self.users.values():
            if lowered in (user.id, user.user_principal_name.lower()):
                return user
        user_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"user:{lowered}")) if "@" in key else lowered
        upn = key if "@" in key else f"{user_id}@contoso.onmicrosoft.com"
        root = DriveItem(id=_item_id(), name="root", parent_id=None, folder=True, created=now, modified=now)
        drive = Drive(id="b!" + secrets.token_urlsafe(24), owner=user_id, root=root)
        user = User(id=user_id, user_principal_name=upn, drive=drive)
        self.users[user_id] = user
        return user

    def drive(self, drive_id: str) -> Drive:
        for user in self.users.values():
            if user.drive.id == drive_id:
                return user.drive
        raise not_found("The drive could not be found.")

    def journal_change(self, journal: Journal, object_id: str) -> None:
        self.sequence += 1
        journal.entries.append((self.sequence, object_id))

    # --- OneDrive --------------------------------------------------------------------------------

    def put_file(self, drive: Drive, path: str, content: bytes, now: datetime) -> DriveItem:
        parts = [p for p in path.strip("/").split("/") if p]
        if not parts or any(p in (".", "..") or any(c in p for c in '"*:<>?\\|') for p in parts):
            raise bad_request(f"The path '{path}' is not valid.", "invalidRequest")
        parent = drive.root
        for name in parts[:-1]:
            parent = self._child(drive, parent, name) or self._add(drive, parent, name, True, b"", now)
        existing = self._child(drive, parent, parts[-1])
        if existing is not None:
            if existing.folder:
                raise GraphError(409, "nameAlreadyExists", "A folder with that name already exists.")
            existing.content, existing.modified, existing.version = content, now, existing.version + 1
            self.journal_change(drive.journal, existing.id)
            return existing
        return self._add(drive, parent, parts[-1], False, content, now)

    def update_drive_item(self, drive: Drive, item_id: str, body: dict[str, Any], now: datetime) -> DriveItem:
        item = self.drive_item(drive, item_id)
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name or "/" in name:
                raise bad_request("The name is not valid.", "invalidRequest")
            item.name = name
        parent = (body.get("parentReference") or {}).get("id")
        if parent is not None:
            if self.drive_item(drive, parent).folder is False:
                raise bad_request("The new parent is not a folder.", "invalidRequest")
            item.parent_id = parent
        item.modified, item.version = now, item.version + 1
        self.journal_change(drive.journal, item.id)
        return item

    def delete_drive_item(self, drive: Drive, item_id: str, now: datetime) -> None:
        item = self.drive_item(drive, item_id)
        item.deleted, item.modified = True, now
        self.journal_change(drive.journal, item.id)

    def drive_item(self, drive: Drive, item_id: str) -> DriveItem:
        item = drive.items.get(item_id)
        if item is None or item.deleted:
            raise GraphError(404, "itemNotFound", "The resource could not be found.")
        return item

    def _child(self, drive: Drive, parent: DriveItem, name: str) -> DriveItem | None:
        return next(
            (
                i
                for i in drive.items.values()
                if i.parent_id == parent.id and not i.deleted and i.name.lower() == name.lower()
            ),
            None,
        )

    def _add(
        self, drive: Drive, parent: DriveItem, name: str, folder: bool, content: bytes, now: datetime
    ) -> DriveItem:
        item = DriveItem(_item_id(), name, parent.id, folder, now, now, content)
        drive.items[item.id] = item
        self.journal_change(drive.journal, item.id)
        return item

    # --- Outlook ---------------------------------------------------------------------------------

    def add_outlook_item(
        self, user: User, kind: str, container: str, fields: dict[str, Any], now: datetime
    ) -> OutlookItem:
        item = OutlookItem(_outlook_id(), kind, container, _writable(fields), now, now)
        user.outlook[item.id] = item
        self.journal_change(user.journal(container), item.id)
        return item

    def update_outlook_item(
        self, user: User, kind: str, item_id: str, fields: dict[str, Any], now: datetime
    ) -> OutlookItem:
        item = self.outlook_item(user, kind, item_id)
        item.fields.update(_writable(fields))
        item.modified, item.version = now, item.version + 1
        self.journal_change(user.journal(item.container), item.id)
        return item

    def delete_outlook_item(self, user: User, kind: str, item_id: str, now: datetime) -> OutlookItem:
        item = self.outlook_item(user, kind, item_id)
        item.deleted, item.modified = True, now
        self.journal_change(user.journal(item.container), item.id)
        return item

    def outlook_item(self, user: User, kind: str, item_id: str) -> OutlookItem:
        item = user.outlook.get(item_id)
        if item is None or item.deleted or item.kind != kind:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return item

    # --- delta -----------------------------------------------------------------------------------

    def delta_page(
        self, objects: dict[str, Any], journal: Journal, since: int | None, upto: int, offset: int, size: int
    ) -> tuple[list[str], bool]:
        """Ids of the objects changed in (since, upto] (every live object when since is None),
        one page of them from offset, and whether more follow."""
        if since is None:
            ids = [key for key, obj in objects.items() if not obj.deleted]
        else:
            ids = [key for key in journal.changed_since(since, upto) if key in objects]
        return ids[offset : offset + size], offset + size < len(ids)

    # --- subscriptions ---------------------------------------------------------------------------

    def subscriptions_on(self, user_id: str, container: str, change_type: str) -> Iterable[GraphSubscription]:
        for subscription in self.subscriptions.values():
            watches = subscription.user_id == user_id and subscription.container in (container, "*")
            if watches and (subscription.kind == "driveItem" or change_type in subscription.change_types):
                yield subscription


def _item_id() -> str:
    return "01" + secrets.token_hex(16).upper()[:32]


def _outlook_id() -> str:
    return "AAMk" + base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")


def _writable(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in fields.items()
        if k not in ("id", "@odata.etag", "createdDateTime", "lastModifiedDateTime")
    }
