"""The emulator's Teams, keyed as Graph keys it: teams with channels, chats with members, and
their messages (posted, edited, soft-deleted, replied to), each collection journaled so that a
channel's messages delta is a position in it. Also what Graph checks before a Teams subscription:
the app's granted permissions and resource-specific consent."""

from __future__ import annotations

import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import GraphError, bad_request
from .model import Journal, graph_time

# Every application permission a tenant admin may grant the emulator's apps (None: all of them).
TEAMS_APP_ROLES = ("ChannelMessage.Read.All", "Chat.Read.All")
# The faults a test may ask of the next rich notifications (POST /_emulator/teams/faults).
RICH_FAULTS = ("flipData", "wrongAudience", "expiredToken", "noTokens", "unknownCertificate", "twoTenants")


@dataclass
class ChatMessage:
    id: str
    author_id: str
    author_name: str
    content: str
    content_type: str
    created: datetime
    modified: datetime
    team_id: str | None = None
    channel_id: str | None = None
    chat_id: str | None = None
    reply_to: str | None = None
    deleted: datetime | None = None
    edited: datetime | None = None
    mentions: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    tenant_id: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.chatMessage",
            "id": self.id,
            "replyToId": self.reply_to,
            "etag": str(int(self.modified.timestamp() * 1000)),
            "messageType": "message",
            "createdDateTime": graph_time(self.created),
            "lastModifiedDateTime": graph_time(self.modified),
            "lastEditedDateTime": graph_time(self.edited) if self.edited else None,
            "deletedDateTime": graph_time(self.deleted) if self.deleted else None,
            "subject": None,
            "summary": None,
            "chatId": self.chat_id,
            "importance": "normal",
            "locale": "en-us",
            "webUrl": None,
            "policyViolation": None,
            "from": {
                "application": None,
                "device": None,
                "user": {
                    "@odata.type": "#microsoft.graph.teamworkUserIdentity",
                    "id": self.author_id,
                    "displayName": self.author_name,
                    "userIdentityType": "aadUser",
                    "tenantId": self.tenant_id,
                },
            },
            "body": {"contentType": self.content_type, "content": "" if self.deleted else self.content},
            "channelIdentity": {"teamId": self.team_id, "channelId": self.channel_id}
            if self.channel_id
            else None,
            "attachments": [] if self.deleted else self.attachments,
            "mentions": [] if self.deleted else self.mentions,
            "reactions": [],
        }

    def resource_path(self) -> str:
        """The notification's `resource`, as Graph writes it for this message."""
        if self.chat_id:
            return f"chats('{self.chat_id}')/messages('{self.id}')"
        base = f"teams('{self.team_id}')/channels('{self.channel_id}')/messages"
        return f"{base}('{self.reply_to}')/replies('{self.id}')" if self.reply_to else f"{base}('{self.id}')"


@dataclass
class Channel:
    id: str
    display_name: str
    team_id: str
    created: datetime
    messages: dict[str, ChatMessage] = field(default_factory=dict)
    journal: Journal = field(default_factory=lambda: Journal("channel"))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "displayName": self.display_name,
            "description": None,
            "membershipType": "standard",
            "createdDateTime": graph_time(self.created),
        }


@dataclass
class Team:
    id: str
    display_name: str
    channels: dict[str, Channel] = field(default_factory=dict)
    # Apps granted resource-specific consent here (ChannelMessage.Read.Group).
    consented_apps: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "displayName": self.display_name, "description": None, "isArchived": False}


@dataclass
class Chat:
    id: str
    topic: str | None
    chat_type: str
    members: list[str]
    created: datetime
    messages: dict[str, ChatMessage] = field(default_factory=dict)
    journal: Journal = field(default_factory=lambda: Journal("chat"))
    consented_apps: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "chatType": self.chat_type,
            "createdDateTime": graph_time(self.created),
            "lastUpdatedDateTime": graph_time(self.created),
            "tenantId": None,
        }


class TeamsState:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.teams: dict[str, Team] = {}
        self.chats: dict[str, Chat] = {}
        self.sequence = 0
        # Application permissions granted per app id; an app not listed has all of TEAMS_APP_ROLES.
        self.app_roles: dict[str, set[str]] = {}
        # Faults for the next rich notifications: name -> how many POSTs it still spoils.
        self.faults: Counter[str] = Counter()
        self.last_message_ms = 0

    def roles_of(self, app_id: str) -> set[str]:
        return self.app_roles.get(app_id, set(TEAMS_APP_ROLES))

    def add_team(self, display_name: str, channels: list[str], now: datetime) -> Team:
        team = Team(str(uuid.uuid4()), display_name)
        self.teams[team.id] = team
        for name in channels or ["General"]:
            self.add_channel(team, name, now)
        return team

    def add_channel(self, team: Team, display_name: str, now: datetime) -> Channel:
        if any(c.display_name.lower() == display_name.lower() for c in team.channels.values()):
            raise GraphError(400, "BadRequest", "Channel name already existed, please use other name")
        channel = Channel(f"19:{secrets.token_hex(16)}@thread.tacv2", display_name, team.id, now)
        team.channels[channel.id] = channel
        return channel

    def add_chat(self, topic: str | None, chat_type: str, members: list[str], now: datetime) -> Chat:
        chat = Chat(f"19:{secrets.token_hex(16)}@thread.v2", topic, chat_type, members, now)
        self.chats[chat.id] = chat
        return chat

    def team(self, team_id: str) -> Team:
        team = self.teams.get(team_id.lower())
        if team is None:
            raise GraphError(404, "NotFound", f"No team found with Group Id {team_id}")
        return team

    def channel(self, team_id: str, channel_id: str) -> Channel:
        channel = self.team(team_id).channels.get(channel_id)
        if channel is None:
            raise GraphError(404, "NotFound", "Channel not found")
        return channel

    def chat(self, chat_id: str) -> Chat:
        chat = self.chats.get(chat_id)
        if chat is None:
            raise GraphError(404, "NotFound", f"Chat not found: {chat_id}")
        return chat

    def new_message_id(self, now: datetime) -> str:
        """Teams' message ids are the milliseconds of their creation, unique within a thread."""
        self.last_message_ms = max(self.last_message_ms + 1, int(now.timestamp() * 1000))
        return str(self.last_message_ms)

    def journal(self, journal: Journal, message_id: str) -> None:
        self.sequence += 1
        journal.entries.append((self.sequence, message_id))


def message_body(body: dict[str, Any]) -> tuple[str, str]:
    """A message's body from a POST or PATCH: `{"body": {"contentType", "content"}}`."""
    content = body.get("body")
    if not isinstance(content, dict) or not isinstance(content.get("content"), str):
        raise bad_request("Missing body content", "BadRequest")
    content_type = str(content.get("contentType") or "text").lower()
    if content_type not in ("text", "html"):
        raise bad_request(f"Invalid contentType '{content_type}'.", "BadRequest")
    return content["content"], content_type
