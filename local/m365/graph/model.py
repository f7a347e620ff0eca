"""The objects of the emulator's Graph, keyed as Graph keys them: drive items, drives, Outlook
items, users, subscriptions and the notifications waiting for delivery; and the journal a delta
link is a position in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# Maximum subscription lifetime in minutes, per resource (REFERENCE.md: Graph lifetimes).
# chatMessage: 4,320 with resource data (the 2026 table), 60 without.
MAX_LIFETIME_MINUTES = {
    "driveItem": 42_300,
    "message": 10_080,
    "event": 10_080,
    "chatMessage": 4_320,
    "chatMessageWithoutResourceData": 60,
}
MIN_LIFETIME = timedelta(minutes=45)
CLIENT_STATE_MAX = 128
DEFAULT_PAGE_SIZE = 10
WELL_KNOWN_FOLDERS = ("inbox", "drafts", "sentitems", "deleteditems", "archive")
CHANGE_TYPES = ("created", "updated", "deleted")


def graph_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Journal:
    """Which objects of a collection changed, in order; a delta link is a position in it."""

    key: str
    entries: list[tuple[int, str]] = field(default_factory=list)  # (sequence, object id)

    def changed_since(self, sequence: int, upto: int) -> list[str]:
        seen: dict[str, None] = {}
        for number, object_id in self.entries:
            if sequence < number <= upto:
                seen.pop(object_id, None)
                seen[object_id] = None  # ordered by its latest change
        return list(seen)


@dataclass
class DriveItem:
    id: str
    name: str
    parent_id: str | None
    folder: bool
    created: datetime
    modified: datetime
    content: bytes = b""
    deleted: bool = False
    version: int = 1
    modified_by: str = ""  # the app whose token wrote it last

    def to_json(self, drive_id: str, parent_path: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "eTag": f'"{{{self.id.upper()}}},{self.version}"',
            "cTag": f'"c:{{{self.id.upper()}}},{self.version}"',
            "createdDateTime": graph_time(self.created),
            "lastModifiedDateTime": graph_time(self.modified),
            "parentReference": {"driveId": drive_id, "id": self.parent_id}
            if self.parent_id
            else {"driveId": drive_id},
        }
        if parent_path is not None:
            body["parentReference"]["path"] = parent_path
        if self.modified_by:
            body["lastModifiedBy"] = {"application": {"id": self.modified_by, "displayName": "app"}}
        if self.deleted:
            return {
                "id": self.id,
                "deleted": {"state": "deleted"},
                "parentReference": body["parentReference"],
            }
        if self.folder:
            body["folder"] = {"childCount": 0}
        else:
            body["file"] = {"mimeType": "application/octet-stream"}
            body["size"] = len(self.content)
        if self.parent_id is None:
            body["root"] = {}
        return body


@dataclass
class Drive:
    id: str
    owner: str
    root: DriveItem
    items: dict[str, DriveItem] = field(default_factory=dict)
    journal: Journal = field(default_factory=lambda: Journal("drive"))


@dataclass
class OutlookItem:
    """A message in a mail folder, or an event in the calendar."""

    id: str
    kind: str  # "message" or "event"
    container: str  # mail folder name, or "calendar"
    fields: dict[str, Any]
    created: datetime
    modified: datetime
    deleted: bool = False
    version: int = 1

    def to_json(self) -> dict[str, Any]:
        if self.deleted:
            return {"id": self.id, "@removed": {"reason": "deleted"}}
        kind_fields = (
            {"receivedDateTime": graph_time(self.created), "isRead": False} if self.kind == "message" else {}
        )
        return {
            **kind_fields,
            **self.fields,
            "id": self.id,
            "@odata.etag": f'W/"{self.version}"',
            "createdDateTime": graph_time(self.created),
            "lastModifiedDateTime": graph_time(self.modified),
        }


@dataclass
class User:
    id: str
    user_principal_name: str
    drive: Drive
    outlook: dict[str, OutlookItem] = field(default_factory=dict)
    journals: dict[str, Journal] = field(default_factory=dict)

    def journal(self, container: str) -> Journal:
        return self.journals.setdefault(container, Journal(container))


@dataclass
class GraphSubscription:
    id: str
    resource: str
    kind: str  # driveItem, message, event
    change_types: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    expiration: datetime
    client_state: str | None
    app_id: str
    user_id: str
    container: str  # what it watches: "drive", a mail folder name, or "calendar"
    needs_reauthorization: bool = False
    # When it was last PATCHed and last reauthorized (the emulator's clock): Graph forbids both on
    # one subscription within 10 minutes, and the emulator counts any such pair.
    last_patch: datetime | None = None
    last_reauthorize: datetime | None = None
    # Rich notifications (Teams): each change encrypted to this certificate.
    include_resource_data: bool = False
    encryption_certificate: str | None = None
    encryption_certificate_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": ",".join(self.change_types),
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_time(self.expiration),
            "creatorId": self.app_id,
            "latestSupportedTlsVersion": "v1_2",
            "notificationQueryOptions": None,
            "includeResourceData": self.include_resource_data,
            "encryptionCertificate": self.encryption_certificate,
            "encryptionCertificateId": self.encryption_certificate_id,
        }


@dataclass
class PendingGraphNotification:
    subscription_id: str
    url: str
    entry: dict[str, Any]
    due: float
    first_attempt: float | None = None
    attempts: int = 0
