"""Graph's route table: each path and method, its handler (drive_routes, outlook_routes,
subscriptions, batch) and the operation name counters and injected faults use. Anything else
under /v1.0 gets Graph's JSON error, never a plain 404 or 405."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route

from .batch import batch
from .drive_routes import drive_delta, drive_item, upload, user_drive
from .errors import GraphError
from .http import Endpoint, graph_endpoint
from .outlook_routes import (
    calendar_delta,
    events,
    folder_messages,
    messages_delta,
    outlook_item,
    user_messages,
)
from .subscriptions import reauthorize, subscription, subscriptions
from .teams_routes import (
    channel,
    channel_delta,
    channel_message,
    channel_messages,
    channel_replies,
    channels,
    chat,
    chat_message,
    chat_messages,
    chats,
    team,
    team_all_messages,
    teams,
    user_all_chat_messages,
    users,
)

V = "/v1.0"
routes: list[tuple[str, Endpoint, list[str], str]] = [
    (V + "/users/{user}/drive", user_drive, ["GET"], "GetDrive"),
    # A drive by id or a user's own; an item path as `root:/{path}:` (the SDKs write it as an item
    # id, percent-encoded); delta as a path or as the function `delta()`.
    *[
        (V + prefix + suffix, endpoint, methods, name)
        for prefix in ("/drives/{drive}", "/users/{user}/drive")
        for suffix, endpoint, methods, name in (
            ("/root:/{path:path}:/content", upload, ["PUT"], "UploadDriveItem"),
            ("/items/root:/{path:path}:/content", upload, ["PUT"], "UploadDriveItem"),
            ("/root/delta", drive_delta, ["GET"], "DriveDelta"),
            ("/root/delta()", drive_delta, ["GET"], "DriveDelta"),
            ("/items/root/delta", drive_delta, ["GET"], "DriveDelta"),
            ("/items/root/delta()", drive_delta, ["GET"], "DriveDelta"),
            ("/items/{item}", drive_item, ["GET", "PATCH", "DELETE"], "DriveItem"),
        )
    ],
    (V + "/users/{user}/mailFolders('{folder}')/messages", folder_messages, ["POST"], "CreateMessage"),
    (V + "/users/{user}/mailFolders/{folder}/messages", folder_messages, ["POST"], "CreateMessage"),
    *[
        (V + folder + "/messages/" + delta, messages_delta, ["GET"], "MessagesDelta")
        for folder in ("/users/{user}/mailFolders('{folder}')", "/users/{user}/mailFolders/{folder}")
        for delta in ("delta", "delta()")
    ],
    (V + "/users/{user}/messages", user_messages, ["POST"], "CreateMessage"),
    (V + "/users/{user}/events", events, ["POST"], "CreateEvent"),
    (V + "/users/{user}/calendarView/delta", calendar_delta, ["GET"], "EventsDelta"),
    (V + "/users/{user}/calendarView/delta()", calendar_delta, ["GET"], "EventsDelta"),
    (V + "/users/{user}/{collection}/{item}", outlook_item, ["GET", "PATCH", "DELETE"], "OutlookItem"),
    (V + "/teams", teams, ["GET"], "ListTeams"),
    (V + "/teams/{team}", team, ["GET"], "GetTeam"),
    (V + "/teams/{team}/channels", channels, ["GET", "POST"], "Channels"),
    (V + "/teams/{team}/channels/getAllMessages", team_all_messages, ["GET"], "TeamAllMessages"),
    (V + "/teams/{team}/channels/{channel}", channel, ["GET"], "GetChannel"),
    (V + "/teams/{team}/channels/{channel}/messages", channel_messages, ["GET", "POST"], "ChannelMessages"),
    (V + "/teams/{team}/channels/{channel}/messages/delta", channel_delta, ["GET"], "ChannelMessagesDelta"),
    (
        V + "/teams/{team}/channels/{channel}/messages/{message}",
        channel_message,
        ["GET", "PATCH"],
        "ChannelMessage",
    ),
    (
        V + "/teams/{team}/channels/{channel}/messages/{message}/softDelete",
        channel_message,
        ["POST"],
        "SoftDeleteMessage",
    ),
    (
        V + "/teams/{team}/channels/{channel}/messages/{message}/replies",
        channel_replies,
        ["POST"],
        "ReplyToMessage",
    ),
    (V + "/chats", chats, ["POST"], "CreateChat"),
    (V + "/chats/{chat}", chat, ["GET"], "GetChat"),
    (V + "/chats/{chat}/messages", chat_messages, ["GET", "POST"], "ChatMessages"),
    (V + "/chats/{chat}/messages/{message}", chat_message, ["GET"], "GetChatMessage"),
    (V + "/chats/{chat}/messages/{message}", chat_message, ["PATCH"], "EditMessage"),
    (V + "/chats/{chat}/messages/{message}/softDelete", chat_message, ["POST"], "SoftDeleteMessage"),
    (V + "/users", users, ["GET"], "ListUsers"),
    (V + "/users/{user}/chats/getAllMessages", user_all_chat_messages, ["GET"], "UserChatsAllMessages"),
    (V + "/subscriptions", subscriptions, ["GET", "POST"], "GraphSubscriptions"),
    (V + "/subscriptions/{subscription_id}", subscription, ["GET", "PATCH", "DELETE"], "GraphSubscription"),
    (V + "/subscriptions/{subscription_id}/reauthorize", reauthorize, ["POST"], "Reauthorize"),
    (V + "/$batch", batch, ["POST"], "Batch"),
]


_known = [
    Route(path, graph_endpoint(name, endpoint), methods=methods) for path, endpoint, methods, name in routes
]


async def unknown_segment(request: Request) -> Response:
    """What Graph answers for a path it has no resource for (JSON, as every Graph error), or for a
    method a resource does not take."""
    scope = {**request.scope, "method": request.method}
    if any(route.matches(scope)[0] is Match.PARTIAL for route in _known):
        raise GraphError(
            405, "BadRequest", f"The HTTP method '{request.method}' is not allowed for this resource."
        )
    segment = request.path_params["rest"].rstrip("/").rsplit("/", 1)[-1]
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


# Last: anything else under /v1.0 gets Graph's JSON error, never the server's plain-text 404 or 405.
graph_routes = [
    *_known,
    Route(
        V + "/{rest:path}",
        graph_endpoint("Unknown", unknown_segment),
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    ),
]
