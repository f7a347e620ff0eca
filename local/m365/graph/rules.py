"""Graph's rules for subscriptions: which resources, which URLs, how long they may live."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from ..clock import parse_time
from .errors import bad_request
from .model import MAX_LIFETIME_MINUTES, MIN_LIFETIME, User
from .state import GraphTenant

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
EVERY_MAIL_FOLDER = "*"  # `users/{id}/messages` watches the whole mailbox


@dataclass(frozen=True)
class WatchedResource:
    kind: str  # driveItem, message, event, chatMessage
    user: User | None  # None for Teams resources
    container: (
        str  # "drive", a mail folder, "calendar"; channel:{team}:{channel}, chat:{id}, allChannels, allChats
    )


_DRIVE_ROOT = re.compile(r"^/?drives/([^/]+)/root$", re.IGNORECASE)
_USER_DRIVE_ROOT = re.compile(r"^/?users/([^/]+)/drive/root$", re.IGNORECASE)
_FOLDER_MESSAGES = re.compile(
    r"^/?users/([^/]+)/mailFolders(?:\('([^']+)'\)|/([^/]+))/messages$", re.IGNORECASE
)
_USER_MESSAGES = re.compile(r"^/?users/([^/]+)/messages$", re.IGNORECASE)
_EVENTS = re.compile(r"^/?users/([^/]+)/events$", re.IGNORECASE)
_CHANNEL_MESSAGES = re.compile(r"^/?teams/([^/]+)/channels/([^/]+)/messages$", re.IGNORECASE)
_CHAT_MESSAGES = re.compile(r"^/?chats/([^/]+)/messages$", re.IGNORECASE)


def watched(graph: GraphTenant, resource: str, now: datetime) -> WatchedResource:
    if match := _DRIVE_ROOT.match(resource):
        drive = graph.drive(match.group(1))
        return WatchedResource("driveItem", graph.users[drive.owner], "drive")
    if match := _USER_DRIVE_ROOT.match(resource):
        return WatchedResource("driveItem", graph.user(match.group(1), now), "drive")
    if match := _FOLDER_MESSAGES.match(resource):
        folder = (match.group(2) or match.group(3)).lower()
        return WatchedResource("message", graph.user(match.group(1), now), folder)
    if match := _USER_MESSAGES.match(resource):
        return WatchedResource("message", graph.user(match.group(1), now), EVERY_MAIL_FOLDER)
    if match := _EVENTS.match(resource):
        return WatchedResource("event", graph.user(match.group(1), now), "calendar")
    if match := _CHANNEL_MESSAGES.match(resource):
        channel = graph.teams.channel(match.group(1), match.group(2))
        return WatchedResource("chatMessage", None, f"channel:{channel.team_id}:{channel.id}")
    if match := _CHAT_MESSAGES.match(resource):
        chat_id = match.group(1)
        if chat_id.lower() == "getallmessages":
            return WatchedResource("chatMessage", None, "allChats")
        return WatchedResource("chatMessage", None, f"chat:{graph.teams.chat(chat_id).id}")
    if resource.strip("/").lower() == "teams/getallmessages":
        return WatchedResource("chatMessage", None, "allChannels")
    if resource.strip("/").lower() == "chats/getallmessages":
        return WatchedResource("chatMessage", None, "allChats")
    raise bad_request(f"Resource '{resource}' is not supported for change notifications.", "ExtensionError")


def expire_subscriptions(graph: GraphTenant, now: datetime) -> None:
    for subscription_id in [s.id for s in graph.subscriptions.values() if s.expiration <= now]:
        del graph.subscriptions[subscription_id]


def check_https(name: str, url: Any) -> None:
    """Graph calls only HTTPS URLs; the emulator also allows http to loopback for local runs."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or not parts.netloc
        or not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS))
    ):
        raise bad_request(f"The {name} must be an https URL.", "InvalidRequest")


def expiration_of(value: Any, kind: str, now: datetime) -> datetime:
    try:
        expiration = parse_time(str(value))
    except ValueError:
        raise bad_request(f"'{value}' is not a valid expirationDateTime.", "InvalidRequest") from None
    if expiration.tzinfo is None:
        raise bad_request("expirationDateTime must carry a time zone.", "InvalidRequest")
    maximum = MAX_LIFETIME_MINUTES[kind]
    if expiration <= now:
        raise bad_request("Subscription expiration must be in the future.", "InvalidRequest")
    if expiration > now + timedelta(minutes=maximum):
        raise bad_request(
            f"Subscription expiration can only be {maximum} minutes in the future.", "InvalidRequest"
        )
    return max(expiration, now + MIN_LIFETIME)
