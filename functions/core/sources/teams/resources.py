"""The Teams resources this source follows, Graph's rules for each, and where a catch-up read of
each starts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote

from ..base import InvalidSubscriptionRequest

ResourceKind = Literal["channel", "chat", "allChannels", "allChats"]

# chatMessage with resource data (Graph's subscription resource, 2026 table: 4,320 minutes; 60
# without resource data, which this source never asks for). The one place to change it.
MAX_LIFETIME = timedelta(minutes=4_320)
# Graph refuses a Teams subscription past this without a lifecycleNotificationUrl.
LIFECYCLE_URL_REQUIRED_PAST = timedelta(hours=1)
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
# The application permissions each resource needs (or resource-specific consent to one team or chat).
PERMISSIONS: dict[str, str] = {
    "channel": "ChannelMessage.Read.All, or ChannelMessage.Read.Group consented in the team",
    "chat": "Chat.Read.All, or ChatMessage.Read.Chat consented in the chat",
    "allChannels": "ChannelMessage.Read.All",
    "allChats": "Chat.Read.All",
}
# Chat message lists take at most 50 a page.
LIST_PAGE_SIZE = 50

_TEAM = r"(?P<team>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
# Thread ids: 19:{id}@thread.tacv2 (channels), 19:{id}@thread.v2 or 19:{a}_{b}@unq.gbl.spaces (chats).
_THREAD = r"19:[A-Za-z0-9_\-.]{1,200}@[A-Za-z0-9.]{1,40}"
_CHANNEL_MESSAGES = re.compile(rf"/teams/{_TEAM}/channels/(?P<channel>{_THREAD})/messages")
_CHAT_MESSAGES = re.compile(rf"/chats/(?P<chat>{_THREAD})/messages")


class InvalidTeamsResource(InvalidSubscriptionRequest):
    pass


@dataclass(frozen=True)
class TeamsResource:
    path: str
    kind: ResourceKind
    team_id: str | None = None
    channel_id: str | None = None
    chat_id: str | None = None

    @classmethod
    def parse(cls, path: str) -> TeamsResource:
        path = "/" + path.strip().lstrip("/")
        if (channel := _CHANNEL_MESSAGES.fullmatch(path)) is not None:
            team, thread = channel["team"].lower(), channel["channel"]
            return cls(
                f"/teams/{team}/channels/{thread}/messages", "channel", team_id=team, channel_id=thread
            )
        if (chat := _CHAT_MESSAGES.fullmatch(path)) is not None:
            return cls(f"/chats/{chat['chat']}/messages", "chat", chat_id=chat["chat"])
        if path.lower() == "/teams/getallmessages":
            return cls("/teams/getAllMessages", "allChannels")
        if path.lower() == "/chats/getallmessages":
            return cls("/chats/getAllMessages", "allChats")
        raise InvalidTeamsResource(
            "resource must be a channel's messages (/teams/{team-id}/channels/{channel-id}/messages), "
            "a chat's (/chats/{chat-id}/messages), /teams/getAllMessages or /chats/getAllMessages"
        )

    @property
    def permission(self) -> str:
        return PERMISSIONS[self.kind]

    @property
    def tenant_wide(self) -> bool:
        return self.kind in ("allChannels", "allChats")

    def delta_url(self, base_url: str, since: datetime) -> str:
        """A channel's messages delta from `since` (the first call's filter; later links carry it)."""
        return (
            f"{base_url}/v1.0/teams/{self.team_id}/channels/{quote(self.channel_id or '', safe=':@')}"
            f"/messages/delta?$filter=lastModifiedDateTime gt {filter_time(since)}"
        )

    def window_filter(self, since: datetime, until: datetime) -> str:
        after, before = filter_time(since), filter_time(until)
        return f"lastModifiedDateTime gt {after} and lastModifiedDateTime lt {before}"

    def chat_messages_url(self, base_url: str, since: datetime, until: datetime) -> str:
        return (
            f"{base_url}/v1.0/chats/{quote(self.chat_id or '', safe=':@')}/messages?$top={LIST_PAGE_SIZE}"
            f"&$orderby=lastModifiedDateTime desc&$filter={self.window_filter(since, until)}"
        )


def filter_time(moment: datetime) -> str:
    """A time in a $filter, to the millisecond as Teams stamps messages: a window cut to the second
    would leave out what was written in its last second."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_change_type(change_type: str) -> str:
    """`created,updated,deleted` in any subset; normalised."""
    wanted = [t.strip() for t in change_type.split(",") if t.strip()]
    if not wanted or len(set(wanted)) != len(wanted) or not set(wanted) <= CHANGE_TYPES:
        raise InvalidTeamsResource("changeType must be a comma-separated subset of created, updated, deleted")
    return ",".join(t for t in ("created", "updated", "deleted") if t in wanted)
