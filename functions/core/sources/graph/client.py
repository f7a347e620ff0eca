"""The Graph resources this source follows (OneDrive folders, Outlook mail folders and
calendars): how each is named, how long its subscription may live, and where its delta round
starts. The REST calls themselves are `sources/graph_api.py`'s, shared with Teams."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ...models import format_utc
from ..base import InvalidSubscriptionRequest
from ..graph_api import GraphClient

ResourceKind = Literal["driveItem", "message", "event"]

# Maximum subscription lifetime per resource, in minutes (Graph's subscription resource doc; it
# has changed before, so this is the one place to change it).
MAX_LIFETIME_MINUTES: dict[str, int] = {"driveItem": 42_300, "message": 10_080, "event": 10_080}
# Change types each resource accepts.
CHANGE_TYPES: dict[str, frozenset[str]] = {
    "driveItem": frozenset({"updated"}),
    "message": frozenset({"created", "updated", "deleted"}),
    "event": frozenset({"created", "updated", "deleted"}),
}
# The properties a delta round asks for: what a change row needs to say what it was and who made
# it (the times tell an add from an update; file and folder mark a document).
DELTA_SELECT = {
    "driveItem": "id,name,size,file,folder,parentReference,lastModifiedBy,createdDateTime,"
    "lastModifiedDateTime",
    "message": "id,subject,from,receivedDateTime,isRead,createdDateTime,lastModifiedDateTime",
}
# Events are read through calendarView/delta, which needs a window: this far back and ahead.
CALENDAR_WINDOW_BACK = timedelta(days=30)
CALENDAR_WINDOW_AHEAD = timedelta(days=365)

# A resource is parsed into its parts and rebuilt from them, so that nothing but an id reaches a
# Graph URL: a user is a GUID or a user principal name (no '?', '#', '/', '%' or '..').
_USER = (
    r"(?P<user>[A-Za-z0-9](?:[A-Za-z0-9._+\-]*[A-Za-z0-9])?(?:@[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?)?)"
)
_DRIVE_ROOT = re.compile(r"/drives/(?P<drive>[A-Za-z0-9!_\-]+)/root")
_FOLDER_MESSAGES = re.compile(rf"/users/{_USER}/mailFolders\('(?P<folder>[A-Za-z0-9_\-=]+)'\)/messages")
_EVENTS = re.compile(rf"/users/{_USER}/events")


class InvalidGraphResource(InvalidSubscriptionRequest):
    pass


@dataclass(frozen=True)
class GraphResource:
    """A resource this service can follow: what it is, and where its delta query starts."""

    path: str
    kind: ResourceKind

    @classmethod
    def parse(cls, path: str) -> GraphResource:
        if (drive := _DRIVE_ROOT.fullmatch(path)) is not None:
            return cls(f"/drives/{drive['drive']}/root", "driveItem")
        if (folder := _FOLDER_MESSAGES.fullmatch(path)) is not None and ".." not in folder["user"]:
            return cls(f"/users/{folder['user']}/mailFolders('{folder['folder']}')/messages", "message")
        if (calendar := _EVENTS.fullmatch(path)) is not None and ".." not in calendar["user"]:
            return cls(f"/users/{calendar['user']}/events", "event")
        raise InvalidGraphResource(
            "resource must be a OneDrive folder (/drives/{drive-id}/root), a mail folder's messages "
            "(/users/{id}/mailFolders('{folder}')/messages) or a calendar (/users/{id}/events)"
        )

    @property
    def max_lifetime(self) -> timedelta:
        return timedelta(minutes=MAX_LIFETIME_MINUTES[self.kind])

    def check_change_type(self, change_type: str) -> str:
        """`created,updated,deleted` in any subset the resource accepts; normalised."""
        wanted = [t.strip() for t in change_type.split(",") if t.strip()]
        allowed = CHANGE_TYPES[self.kind]
        if not wanted or len(set(wanted)) != len(wanted) or not set(wanted) <= allowed:
            subset = ", ".join(sorted(allowed))
            raise InvalidGraphResource(
                f"changeType for this resource must be a comma-separated subset of {subset}"
            )
        return ",".join(t for t in ("created", "updated", "deleted") if t in wanted)

    def first_delta_url(self, base_url: str, now: datetime) -> str:
        """Where a delta round starts when there is no link yet."""
        if self.kind != "event":  # /drives/{id}/root/delta, .../mailFolders('{f}')/messages/delta
            # What each row carries, from the delta pages themselves; every later round keeps it.
            return f"{base_url}/v1.0{self.path}/delta?$select={DELTA_SELECT[self.kind]}"
        user = self.path.split("/")[2]  # /users/{id}/events, as _EVENTS matched it
        start, end = format_utc(now - CALENDAR_WINDOW_BACK), format_utc(now + CALENDAR_WINDOW_AHEAD)
        window = f"startDateTime={start}&endDateTime={end}"
        return f"{base_url}/v1.0/users/{user}/calendarView/delta?{window}"


def latest_delta_link(client: GraphClient, resource: GraphResource, now: datetime) -> str:
    """The link from which only changes made from now on are read: `token=latest` for a
    drive; for Outlook, a full round whose items are passed over (history is not replayed)."""
    if resource.kind == "driveItem":
        first = resource.first_delta_url(client.base_url, now)
        url = f"{first}{'&' if '?' in first else '?'}token=latest"
    else:
        url = resource.first_delta_url(client.base_url, now)
    # delta_pages ends with the page that carries the delta link, or raises.
    *_, last = client.delta_pages(url)
    return last.delta_link or ""
