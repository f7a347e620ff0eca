"""Teams over Graph: teams and channels, chats, and their messages. Messages are posted, edited,
soft-deleted and replied to with a user's (delegated) token, as Graph allows outside migration;
they are read, listed (filtered on lastModifiedDateTime) and followed with a channel's delta with
any token. Every change notifies the Teams subscriptions watching it, with the message inside."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..clock import parse_time
from ..directory import tenant_of
from .delta import delta_page, max_page_size
from .errors import GraphError, bad_request
from .http import body_of, graph_of, now_of
from .model import GraphSubscription, PendingGraphNotification, graph_time
from .rich import encrypt
from .rules import expire_subscriptions
from .teams_model import Channel, Chat, ChatMessage, TeamsState, message_body

MAX_LIST_PAGE = 50


def _teams(request: Request) -> TeamsState:
    return graph_of(request).teams


def _author(request: Request) -> tuple[str, str]:
    """The signed-in user a delegated token acts for: (id, display name)."""
    token = request.headers.get("Authorization", "").partition(" ")[2]
    upn = tenant_of(request).tokens.user_of(token.strip(), time.time())
    if upn is None:
        raise GraphError(
            403,
            "Forbidden",
            "Application permissions are supported only for migration. Send the message with a "
            "delegated (user) token.",
        )
    user = graph_of(request).user(upn, now_of(request))
    return user.id, upn.split("@", 1)[0].replace(".", " ").title()


# --- teams and channels ----------------------------------------------------------------------


async def teams(request: Request) -> Response:
    return JSONResponse({"value": [team.to_json() for team in _teams(request).teams.values()]})


async def team(request: Request) -> Response:
    return JSONResponse(_teams(request).team(request.path_params["team"]).to_json())


async def channels(request: Request) -> Response:
    found = _teams(request).team(request.path_params["team"])
    if request.method == "GET":
        return JSONResponse({"value": [c.to_json() for c in found.channels.values()]})
    body = await body_of(request)
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise bad_request("displayName is required.", "BadRequest")
    channel = _teams(request).add_channel(found, name.strip(), now_of(request))
    return JSONResponse(channel.to_json(), status_code=201)


async def channel(request: Request) -> Response:
    params = request.path_params
    return JSONResponse(_teams(request).channel(params["team"], params["channel"]).to_json())


def _channel(request: Request) -> Channel:
    return _teams(request).channel(request.path_params["team"], request.path_params["channel"])


# --- messages --------------------------------------------------------------------------------


async def channel_messages(request: Request) -> Response:
    found = _channel(request)
    if request.method == "GET":
        return _listed(request, found.messages)
    return await _post(request, found.messages, found.journal, team_id=found.team_id, channel_id=found.id)


async def channel_replies(request: Request) -> Response:
    found = _channel(request)
    parent = _message(found.messages, request.path_params["message"])
    return await _post(
        request, found.messages, found.journal, team_id=found.team_id, channel_id=found.id, reply_to=parent.id
    )


async def channel_message(request: Request) -> Response:
    found = _channel(request)
    return await _one(request, found.messages, found.journal)


async def chat_messages(request: Request) -> Response:
    found = _chat(request)
    if request.method == "GET":
        return _listed(request, found.messages)
    return await _post(request, found.messages, found.journal, chat_id=found.id)


async def chat_message(request: Request) -> Response:
    found = _chat(request)
    return await _one(request, found.messages, found.journal)


async def channel_delta(request: Request) -> Response:
    found = _channel(request)
    objects: dict[str, ChatMessage] = found.messages
    since = _filter_since(request)
    if since is not None:
        objects = {key: m for key, m in objects.items() if m.modified > since}
    return delta_page(
        request,
        graph_of(request),
        f"channel:{found.id}",
        objects,
        found.journal,
        str(request.url.replace(query="")),
        max_page_size(request),
        lambda message_id: found.messages[message_id].to_json(),
    )


async def team_all_messages(request: Request) -> Response:
    found = _teams(request).team(request.path_params["team"])
    every = {m.id: m for c in found.channels.values() for m in c.messages.values()}
    return _listed(request, every)


async def user_all_chat_messages(request: Request) -> Response:
    user = graph_of(request).user(request.path_params["user"], now_of(request))
    every = {
        m.id: m for c in _teams(request).chats.values() if user.id in c.members for m in c.messages.values()
    }
    return _listed(request, every)


async def users(request: Request) -> Response:
    listed = [
        {"id": u.id, "userPrincipalName": u.user_principal_name} for u in graph_of(request).users.values()
    ]
    return JSONResponse({"value": listed})


# --- chats -----------------------------------------------------------------------------------


async def chats(request: Request) -> Response:
    """`POST /chats` with members, each `{"user@odata.bind": ".../users('{id}')"}`."""
    body = await body_of(request)
    chat_type = body.get("chatType")
    if chat_type not in ("oneOnOne", "group"):
        raise bad_request("chatType must be 'oneOnOne' or 'group'.", "BadRequest")
    members = []
    for member in body.get("members") or []:
        bind = member.get("user@odata.bind") if isinstance(member, dict) else None
        if not isinstance(bind, str) or "users('" not in bind:
            raise bad_request("Each member needs user@odata.bind.", "BadRequest")
        upn = bind.split("users('", 1)[1].split("')", 1)[0]
        members.append(graph_of(request).user(upn, now_of(request)).id)
    if len(members) < 2 or (chat_type == "oneOnOne" and len(members) != 2):
        raise bad_request("A chat needs two members (oneOnOne) or more (group).", "BadRequest")
    created = _teams(request).add_chat(body.get("topic"), chat_type, members, now_of(request))
    return JSONResponse(created.to_json(), status_code=201)


async def chat(request: Request) -> Response:
    return JSONResponse(_chat(request).to_json())


def _chat(request: Request) -> Chat:
    return _teams(request).chat(request.path_params["chat"])


# --- shared ------------------------------------------------------------------------------------


def _message(messages: dict[str, ChatMessage], message_id: str) -> ChatMessage:
    found = messages.get(message_id)
    if found is None:
        raise GraphError(404, "NotFound", f"Message {message_id} not found")
    return found


async def _post(request: Request, messages: dict[str, ChatMessage], journal: Any, **where: Any) -> Response:
    author_id, author_name = _author(request)
    body = await body_of(request)
    content, content_type = message_body(body)
    now = now_of(request)
    graph = graph_of(request)
    message = ChatMessage(
        id=_teams(request).new_message_id(now),
        author_id=author_id,
        author_name=author_name,
        content=content,
        content_type=content_type,
        created=now,
        modified=now,
        mentions=list(body.get("mentions") or []),
        attachments=list(body.get("attachments") or []),
        tenant_id=graph.tenant_id,
        **where,
    )
    messages[message.id] = message
    graph.journal_change(journal, message.id)
    notify_message(request, message, "created")
    return JSONResponse(message.to_json(), status_code=201)


async def _one(request: Request, messages: dict[str, ChatMessage], journal: Any) -> Response:
    """GET a message; PATCH its body (the author's edit); POST …/softDelete."""
    message = _message(messages, request.path_params["message"])
    if request.method == "GET":
        return JSONResponse(message.to_json())
    author_id, _ = _author(request)
    if author_id != message.author_id:
        raise GraphError(403, "Forbidden", "Only the author may change a message.")
    now = now_of(request)
    if request.url.path.endswith("/softDelete"):
        if message.deleted is None:
            message.deleted = message.modified = now
            graph_of(request).journal_change(journal, message.id)
            notify_message(request, message, "deleted")
        return Response(status_code=204)
    content, content_type = message_body(await body_of(request))
    if message.deleted is not None:
        raise GraphError(404, "NotFound", f"Message {message.id} not found")
    message.content, message.content_type = content, content_type
    message.edited = message.modified = now
    graph_of(request).journal_change(journal, message.id)
    notify_message(request, message, "updated")
    return Response(status_code=204)


def _filter_since(request: Request) -> datetime | None:
    """`lastModifiedDateTime gt {time}` of a `$filter`, the one filter these lists take."""
    raw = request.query_params.get("$filter")
    if raw is None:
        return None
    since, _ = _window(raw)
    return since


def _window(raw: str) -> tuple[datetime | None, datetime | None]:
    since = until = None
    for clause in raw.split(" and "):
        parts = clause.strip().split(" ")
        if len(parts) != 3 or parts[0] != "lastModifiedDateTime" or parts[1] not in ("gt", "lt"):
            raise bad_request(
                "Only lastModifiedDateTime with gt and lt is supported in $filter.", "BadRequest"
            )
        try:
            moment = parse_time(parts[2])
        except ValueError:
            raise bad_request(f"'{parts[2]}' is not a valid DateTimeOffset.", "BadRequest") from None
        if parts[1] == "gt":
            since = moment
        else:
            until = moment
    return since, until


def _listed(request: Request, messages: dict[str, ChatMessage]) -> Response:
    """A page of messages, `$filter` on lastModifiedDateTime, `$orderby=lastModifiedDateTime desc`,
    `$top` at most 50, `$skiptoken` for the next page."""
    query = request.query_params
    top = int(query.get("$top", MAX_LIST_PAGE))
    if not 1 <= top <= MAX_LIST_PAGE:
        raise bad_request(f"$top must be between 1 and {MAX_LIST_PAGE}.", "BadRequest")
    order = query.get("$orderby")
    if order not in (None, "lastModifiedDateTime desc", "createdDateTime desc"):
        raise bad_request("Only lastModifiedDateTime desc is supported in $orderby.", "BadRequest")
    since, until = _window(query["$filter"]) if "$filter" in query else (None, None)
    chosen = sorted(
        (
            m
            for m in messages.values()
            if (since is None or m.modified > since) and (until is None or m.modified < until)
        ),
        key=lambda m: m.modified,
        reverse=True,
    )
    offset = int(query.get("$skiptoken", "0") or 0)
    page = chosen[offset : offset + top]
    body: dict[str, Any] = {"value": [m.to_json() for m in page]}
    if offset + top < len(chosen):
        body["@odata.nextLink"] = str(request.url.include_query_params(**{"$skiptoken": str(offset + top)}))
    return JSONResponse(body)


# --- notifications -----------------------------------------------------------------------------


def watchers(subscription: GraphSubscription, message: ChatMessage) -> bool:
    container = subscription.container
    if message.chat_id:
        return container in ("allChats", f"chat:{message.chat_id}")
    return container in ("allChannels", f"channel:{message.team_id}:{message.channel_id}")


def notify_message(request: Request, message: ChatMessage, change_type: str) -> None:
    """A rich notification for each subscription watching the message, with its own key."""
    graph = graph_of(request)
    expire_subscriptions(graph, now_of(request))
    for subscription in list(graph.subscriptions.values()):
        if subscription.kind != "chatMessage" or change_type not in subscription.change_types:
            continue
        if not watchers(subscription, message):
            continue
        if subscription.id in tenant_of(request).withheld:
            tenant_of(request).delivery["withheld"] += 1
            continue
        resource = message.to_json()
        entry: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": graph_time(subscription.expiration),
            "changeType": change_type,
            "resource": message.resource_path(),
            "tenantId": graph.tenant_id,
            "clientState": subscription.client_state,
            "resourceData": {
                "id": message.id,
                "@odata.type": "#Microsoft.Graph.chatMessage",
                "@odata.id": message.resource_path(),
            },
        }
        if subscription.include_resource_data and subscription.encryption_certificate:
            entry["encryptedContent"] = encrypt(
                resource, subscription.encryption_certificate, subscription.encryption_certificate_id or ""
            )
        graph.pending.append(
            PendingGraphNotification(subscription.id, subscription.notification_url, entry, 0.0)
        )
