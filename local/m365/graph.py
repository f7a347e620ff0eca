"""Microsoft Graph routes (`/v1.0/...`): OneDrive, Outlook mail and calendar, delta queries and
change-notification subscriptions, with Graph's rules and error bodies; and Graph's delivery of
change and lifecycle notifications.

    drives:    GET /users/{id}/drive, PUT /drives/{id}/root:/{path}:/content,
               PATCH|DELETE|GET /drives/{id}/items/{item}, GET /drives/{id}/root/delta
    messages:  POST /users/{id}/mailFolders('{folder}')/messages, PATCH|DELETE /users/{id}/messages/{m},
               GET /users/{id}/mailFolders('{folder}')/messages/delta
    events:    POST /users/{id}/events, PATCH|DELETE /users/{id}/events/{e},
               GET /users/{id}/calendarView/delta?startDateTime=…&endDateTime=…
    subscriptions: POST|GET /subscriptions, GET|PATCH|DELETE /subscriptions/{id},
               POST /subscriptions/{id}/reauthorize
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .graph_state import (
    CHANGE_TYPES,
    CLIENT_STATE_MAX,
    DEFAULT_PAGE_SIZE,
    MAX_LIFETIME_MINUTES,
    MIN_LIFETIME,
    GraphError,
    GraphSubscription,
    GraphTenant,
    Journal,
    PendingGraphNotification,
    User,
    bad_request,
    graph_time,
    not_found,
)

log = logging.getLogger("m365.graph")

VALIDATION_TIMEOUT_SECONDS = 10.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class DeliveryPolicy:
    """Graph's delivery, with its thresholds as parameters (the docs have changed them before)."""

    interval: float = 1.0
    timeout: float = 10.0  # an answer slower than this counts as slow
    retry_base: float = 60.0  # first retry after this, doubling each time
    retry_for: float = 4 * 3600.0  # then the notification is dropped
    slow_share: float = 0.10  # over this share of slow answers (last 10 minutes): delayed
    drop_share: float = 0.15  # over this share: dropped for drop_for seconds
    slow_delay: float = 60.0
    drop_for: float = 600.0
    window: float = 600.0


# --- resources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchedResource:
    kind: str  # driveItem, message, event
    user: User
    container: str  # "drive", a mail folder, or "calendar"


_DRIVE_ROOT = re.compile(r"^/?drives/([^/]+)/root$", re.IGNORECASE)
_USER_DRIVE_ROOT = re.compile(r"^/?users/([^/]+)/drive/root$", re.IGNORECASE)
_FOLDER_MESSAGES = re.compile(
    r"^/?users/([^/]+)/mailFolders(?:\('([^']+)'\)|/([^/]+))/messages$", re.IGNORECASE
)
_EVENTS = re.compile(r"^/?users/([^/]+)/events$", re.IGNORECASE)


def watched(graph: GraphTenant, resource: str, now: datetime) -> WatchedResource:
    if match := _DRIVE_ROOT.match(resource):
        drive = graph.drive(match.group(1))
        return WatchedResource("driveItem", graph.users[drive.owner], "drive")
    if match := _USER_DRIVE_ROOT.match(resource):
        return WatchedResource("driveItem", graph.user(match.group(1), now), "drive")
    if match := _FOLDER_MESSAGES.match(resource):
        folder = (match.group(2) or match.group(3)).lower()
        return WatchedResource("message", graph.user(match.group(1), now), folder)
    if match := _EVENTS.match(resource):
        return WatchedResource("event", graph.user(match.group(1), now), "calendar")
    raise bad_request(f"Resource '{resource}' is not supported for change notifications.", "ExtensionError")


# --- the endpoint wrapper ---------------------------------------------------------------------

Endpoint = Callable[[Request], Awaitable[Response]]


def graph_error_response(error: GraphError, request_id: str) -> JSONResponse:
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": request_id,
            },
        }
    }
    return JSONResponse(body, status_code=error.status, headers={"request-id": request_id, **error.headers})


def _graph(request: Request) -> GraphTenant:
    return request.app.state.tenant.graph


def _now(request: Request) -> datetime:
    return request.app.state.tenant.clock.now()


def _app_id(request: Request) -> str:
    return request.state.app_id


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request("Unable to read JSON request payload.", "BadRequest") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", "BadRequest")
    return body


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}/v1.0"


# --- OneDrive ---------------------------------------------------------------------------------


async def user_drive(request: Request) -> Response:
    user = _graph(request).user(request.path_params["user"], _now(request))
    return JSONResponse({"id": user.drive.id, "driveType": "business", "owner": {"user": {"id": user.id}}})


async def upload(request: Request) -> Response:
    graph = _graph(request)
    drive = graph.drive(request.path_params["drive"])
    item = graph.put_file(drive, request.path_params["path"], await request.body(), _now(request))
    _notify(request, drive.owner, "drive", "updated", f"drives/{drive.id}/root", None)
    return JSONResponse(item.to_json(drive.id), status_code=201 if item.version == 1 else 200)


async def drive_item(request: Request) -> Response:
    graph = _graph(request)
    drive = graph.drive(request.path_params["drive"])
    item_id = request.path_params["item"]
    if request.method == "GET":
        return JSONResponse(graph.drive_item(drive, item_id).to_json(drive.id))
    if request.method == "PATCH":
        item = graph.update_drive_item(drive, item_id, await _body(request), _now(request))
        _notify(request, drive.owner, "drive", "updated", f"drives/{drive.id}/root", None)
        return JSONResponse(item.to_json(drive.id))
    graph.delete_drive_item(drive, item_id, _now(request))
    _notify(request, drive.owner, "drive", "updated", f"drives/{drive.id}/root", None)
    return Response(status_code=204)


async def drive_delta(request: Request) -> Response:
    graph = _graph(request)
    drive = graph.drive(request.path_params["drive"])
    objects = {drive.root.id: drive.root, **drive.items}
    base = f"{_base(request)}/drives/{drive.id}/root/delta"
    size = int(request.query_params.get("$top", DEFAULT_PAGE_SIZE))

    def render(object_id: str) -> dict[str, Any]:
        return objects[object_id].to_json(drive.id)

    return _delta(
        request, graph, f"drive:{drive.id}", objects, drive.journal, base, size, render, param="token"
    )


# --- Outlook ----------------------------------------------------------------------------------


def _folder(request: Request) -> str:
    return (request.path_params.get("folder") or "").strip("'").lower()


async def folder_messages(request: Request) -> Response:
    graph = _graph(request)
    user = graph.user(request.path_params["user"], _now(request))
    message = graph.add_outlook_item(user, "message", _folder(request), await _body(request), _now(request))
    _notify(request, user.id, message.container, "created", f"Users/{user.id}/Messages/{message.id}", message)
    return JSONResponse(message.to_json(), status_code=201)


async def outlook_item(request: Request) -> Response:
    graph = _graph(request)
    user = graph.user(request.path_params["user"], _now(request))
    collection = request.path_params["collection"].lower()
    if collection not in ("messages", "events"):
        raise not_found()
    kind = "message" if collection == "messages" else "event"
    item_id = request.path_params["item"]
    if request.method == "GET":
        return JSONResponse(graph.outlook_item(user, kind, item_id).to_json())
    if request.method == "PATCH":
        item = graph.update_outlook_item(user, kind, item_id, await _body(request), _now(request))
        change = "updated"
    else:
        item = graph.delete_outlook_item(user, kind, item_id, _now(request))
        change = "deleted"
    path = f"Users/{user.id}/{'Messages' if kind == 'message' else 'Events'}/{item.id}"
    _notify(request, user.id, item.container, change, path, item)
    return JSONResponse(item.to_json()) if request.method == "PATCH" else Response(status_code=204)


async def events(request: Request) -> Response:
    graph = _graph(request)
    user = graph.user(request.path_params["user"], _now(request))
    body = await _body(request)
    for edge in ("start", "end"):
        if not isinstance(body.get(edge), dict) or "dateTime" not in body[edge]:
            raise bad_request(
                f"The '{edge}' of an event is required: {{'dateTime', 'timeZone'}}.", "ErrorInvalidRequest"
            )
    event = graph.add_outlook_item(user, "event", "calendar", body, _now(request))
    _notify(request, user.id, "calendar", "created", f"Users/{user.id}/Events/{event.id}", event)
    return JSONResponse(event.to_json(), status_code=201)


async def messages_delta(request: Request) -> Response:
    graph = _graph(request)
    user = graph.user(request.path_params["user"], _now(request))
    folder = _folder(request)
    objects = {k: v for k, v in user.outlook.items() if v.kind == "message" and v.container == folder}
    base = str(request.url.replace(query=""))
    size = _max_page_size(request)
    return _delta(
        request,
        graph,
        f"messages:{user.id}:{folder}",
        objects,
        user.journal(folder),
        base,
        size,
        lambda object_id: objects[object_id].to_json(),
    )


async def calendar_delta(request: Request) -> Response:
    graph = _graph(request)
    user = graph.user(request.path_params["user"], _now(request))
    query = request.query_params
    fresh = "$deltatoken" not in query and "$skiptoken" not in query
    if fresh and ("startDateTime" not in query or "endDateTime" not in query):
        raise bad_request(
            "This request requires a time window specified by the query string parameters "
            "StartDateTime and EndDateTime.",
            "ErrorInvalidParameter",
        )
    objects = {k: v for k, v in user.outlook.items() if v.kind == "event"}
    base = str(request.url.replace(query=""))
    window = {"start": query["startDateTime"], "end": query["endDateTime"]} if fresh else None
    return _delta(
        request,
        graph,
        f"events:{user.id}",
        objects,
        user.journal("calendar"),
        base,
        _max_page_size(request),
        lambda object_id: objects[object_id].to_json(),
        window=window,
    )


def _max_page_size(request: Request) -> int:
    match = re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("Prefer", ""))
    return int(match.group(1)) if match else DEFAULT_PAGE_SIZE


def _delta(
    request: Request,
    graph: GraphTenant,
    collection: str,
    objects: dict[str, Any],
    journal: Journal,
    base: str,
    size: int,
    render: Callable[[str], dict[str, Any]],
    param: str = "$deltatoken",
    window: dict[str, str] | None = None,
) -> Response:
    """One page of a delta round: `@odata.nextLink` while more follow, else `@odata.deltaLink`
    (never both). A link from before the tokens expired answers 410 with a `Location` to start
    over from (the same window, for a calendar)."""
    query = request.query_params
    link = query.get("$skiptoken") or query.get(param)
    state: dict[str, Any]
    if link == "latest":
        state = {"since": graph.sequence, "upto": graph.sequence, "offset": 0, "w": window}
        return JSONResponse({"value": [], "@odata.deltaLink": _link(graph, base, param, collection, state)})
    if link is None:
        state = {"since": None, "upto": graph.sequence, "offset": 0, "w": window}
    else:
        state = _read_link(graph, link, collection)
        if state["g"] != graph.delta_generation:
            restart = base + (
                f"?startDateTime={state['w']['start']}&endDateTime={state['w']['end']}"
                if state.get("w")
                else ""
            )
            raise GraphError(
                410,
                "resyncRequired",
                "Resync required. Replace any local items with the server's version (including deletes) if "
                "you're sure that the service was up to date with your local changes when you last sync'd.",
                {"Location": restart},
            )
        if "$skiptoken" not in query:  # a delta link: a new round from where the last one ended
            state = {"since": state["upto"], "upto": graph.sequence, "offset": 0, "w": state.get("w")}
    ids, more = graph.delta_page(objects, journal, state["since"], state["upto"], state["offset"], size)
    body: dict[str, Any] = {"value": [render(object_id) for object_id in ids]}
    if more:
        following = {**state, "offset": state["offset"] + size}
        body["@odata.nextLink"] = _link(graph, base, "$skiptoken", collection, following)
    else:
        body["@odata.deltaLink"] = _link(graph, base, param, collection, state)
    return JSONResponse(body)


def _link(graph: GraphTenant, base: str, param: str, collection: str, state: dict[str, Any]) -> str:
    raw = json.dumps({**state, "c": collection, "g": graph.delta_generation}).encode()
    return f"{base}?{param}={base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


def _read_link(graph: GraphTenant, token: str, collection: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not isinstance(state, dict) or state.get("c") != collection:
            raise ValueError
        int(state["g"]), int(state["upto"]), int(state["offset"])
    except (ValueError, KeyError, TypeError):
        raise bad_request("The delta or skip token is not valid for this resource.", "badRequest") from None
    return state


# --- subscriptions ----------------------------------------------------------------------------


async def subscriptions(request: Request) -> Response:
    graph = _graph(request)
    if request.method == "GET":
        own = [s.to_json() for s in graph.subscriptions.values() if s.app_id == _app_id(request)]
        return JSONResponse({"value": own})
    body = await _body(request)
    now = _now(request)
    for required in ("changeType", "notificationUrl", "resource", "expirationDateTime"):
        if not isinstance(body.get(required), str) or not body[required]:
            raise bad_request(f"Required property '{required}' is missing.", "InvalidRequest")
    target = watched(graph, body["resource"], now)
    change_types = tuple(t.strip() for t in body["changeType"].split(","))
    if (
        not change_types
        or any(t not in CHANGE_TYPES for t in change_types)
        or len(set(change_types)) != len(change_types)
    ):
        raise bad_request(f"Invalid changeType '{body['changeType']}'.", "ExtensionError")
    if target.kind == "driveItem" and change_types != ("updated",):
        raise bad_request("The changeType for driveItem subscriptions must be 'updated'.", "ExtensionError")
    client_state = body.get("clientState")
    if client_state is not None and (
        not isinstance(client_state, str) or len(client_state) > CLIENT_STATE_MAX
    ):
        raise bad_request(f"clientState must be at most {CLIENT_STATE_MAX} characters.", "InvalidRequest")
    for name in ("notificationUrl", "lifecycleNotificationUrl"):
        if body.get(name) is not None:
            _check_https(name, body[name])
    expiration = _expiration(body["expirationDateTime"], target.kind, now)
    for existing in graph.subscriptions.values():
        if (existing.resource.strip("/").lower(), existing.change_types, existing.notification_url) == (
            body["resource"].strip("/").lower(),
            change_types,
            body["notificationUrl"],
        ) and existing.app_id == _app_id(request):
            raise GraphError(
                409,
                "Conflict",
                "A subscription with the same resource, changeType and notificationUrl already exists.",
            )
    await _validate(request, body["notificationUrl"])
    if body.get("lifecycleNotificationUrl"):
        await _validate(request, body["lifecycleNotificationUrl"])
    subscription = GraphSubscription(
        id=str(uuid.uuid4()),
        resource=body["resource"],
        kind=target.kind,
        change_types=change_types,
        notification_url=body["notificationUrl"],
        lifecycle_url=body.get("lifecycleNotificationUrl"),
        expiration=expiration,
        client_state=client_state,
        app_id=_app_id(request),
        user_id=target.user.id,
        container=target.container,
    )
    graph.subscriptions[subscription.id] = subscription
    return JSONResponse(subscription.to_json(), status_code=201)


async def subscription(request: Request) -> Response:
    graph = _graph(request)
    found = _own_subscription(request)
    if request.method == "GET":
        return JSONResponse(found.to_json())
    if request.method == "DELETE":
        del graph.subscriptions[found.id]
        return Response(status_code=204)
    body = await _body(request)
    if "expirationDateTime" not in body:
        raise bad_request("Only expirationDateTime can be updated.", "InvalidRequest")
    found.expiration = _expiration(body["expirationDateTime"], found.kind, _now(request))
    found.needs_reauthorization = False  # a renewing PATCH also reauthorizes
    return JSONResponse(found.to_json())


async def reauthorize(request: Request) -> Response:
    found = _own_subscription(request)
    found.needs_reauthorization = False
    return Response(status_code=204)


def _own_subscription(request: Request) -> GraphSubscription:
    graph = _graph(request)
    expire_subscriptions(graph, _now(request))
    found = graph.subscriptions.get(request.path_params["subscription_id"])
    if found is None or found.app_id != _app_id(request):
        raise not_found(f"The object '{request.path_params['subscription_id']}' doesn't exist.")
    return found


def expire_subscriptions(graph: GraphTenant, now: datetime) -> None:
    for subscription_id in [s.id for s in graph.subscriptions.values() if s.expiration <= now]:
        del graph.subscriptions[subscription_id]


def _check_https(name: str, url: Any) -> None:
    """Graph calls only HTTPS URLs; the emulator also allows http to loopback for local runs."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        parts is None
        or not parts.netloc
        or not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS))
    ):
        raise bad_request(f"The {name} must be an https URL.", "InvalidRequest")


def _expiration(value: Any, kind: str, now: datetime) -> datetime:
    text = str(value).replace("Z", "+00:00")
    if "." in text:  # Graph accepts seven fractional digits; Python reads six
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        expiration = datetime.fromisoformat(text)
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


async def _validate(request: Request, url: str) -> None:
    """Graph POSTs `validationToken` (URL-encoded; it holds spaces and colons) with a text/plain
    body and needs the decoded token back: 200, text/plain, within 10 s."""
    token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    client: httpx.AsyncClient = request.app.state.http
    request.app.state.tenant.calls["GraphValidateNotificationUrl"] += 1
    try:
        answer = await client.post(
            url,
            params={"validationToken": token},
            content=b"",
            headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=VALIDATION_TIMEOUT_SECONDS,
        )
    except httpx.TimeoutException:
        raise bad_request("Subscription validation request timed out.", "InvalidRequest") from None
    except httpx.HTTPError:
        raise bad_request(
            "Subscription validation request failed. Notification endpoint must respond with "
            "200 OK to validation request.",
            "InvalidRequest",
        ) from None
    if (
        answer.status_code != 200
        or answer.text != token
        or not answer.headers.get("content-type", "").startswith("text/plain")
    ):
        raise bad_request(
            "Subscription validation request failed. Notification endpoint must respond with "
            "200 OK to validation request.",
            "InvalidRequest",
        )


# --- notifications ----------------------------------------------------------------------------


def _notify(
    request: Request, user_id: str, container: str, change_type: str, resource: str, item: Any
) -> None:
    graph = _graph(request)
    now = _now(request)
    expire_subscriptions(graph, now)
    for subscription in graph.subscriptions_on(user_id, container, change_type):
        entry: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": graph_time(subscription.expiration),
            "changeType": "updated" if subscription.kind == "driveItem" else change_type,
            "resource": resource,
            "tenantId": graph.tenant_id,
            "clientState": subscription.client_state,
        }
        if item is not None:  # drive notifications carry no item: follow up with delta
            entry["resourceData"] = {
                "@odata.type": f"#Microsoft.Graph.{'Message' if item.kind == 'message' else 'Event'}",
                "@odata.id": resource,
                "@odata.etag": f'W/"{item.version}"',
                "id": item.id,
            }
        graph.pending.append(
            PendingGraphNotification(subscription.id, subscription.notification_url, entry, due=0.0)
        )


def lifecycle(graph: GraphTenant, subscription: GraphSubscription, event: str) -> dict[str, Any]:
    """Apply a lifecycle event to the subscription; the notification Graph sends for it."""
    allowed = {"driveItem": {"reauthorizationRequired"}}.get(
        subscription.kind, {"reauthorizationRequired", "subscriptionRemoved", "missed"}
    )
    if event not in allowed:
        raise bad_request(
            f"{subscription.kind} subscriptions get no '{event}' lifecycle events.", "InvalidRequest"
        )
    entry = {
        "subscriptionId": subscription.id,
        "subscriptionExpirationDateTime": graph_time(subscription.expiration),
        "tenantId": graph.tenant_id,
        "clientState": subscription.client_state,
        "lifecycleEvent": event,
    }
    if event == "reauthorizationRequired":
        subscription.needs_reauthorization = True
    elif event == "subscriptionRemoved":
        del graph.subscriptions[subscription.id]
    else:  # missed: the notifications waiting for it are gone
        graph.pending = [p for p in graph.pending if p.subscription_id != subscription.id]
    return entry


class GraphDeliverer:
    """Batches per URL on a timer; a failed delivery is retried with exponential back-off for up
    to `retry_for`; an endpoint slow in more than `slow_share` of its answers is delayed, in more
    than `drop_share` its notifications are dropped for a while."""

    def __init__(self, tenant: Any, http: httpx.AsyncClient, policy: DeliveryPolicy) -> None:
        self.tenant = tenant
        self.http = http
        self.policy = policy
        self.answers: dict[str, deque[tuple[float, bool]]] = defaultdict(deque)
        self.dropping_until: dict[str, float] = {}
        self._lock = asyncio.Lock()

    @property
    def graph(self) -> GraphTenant:
        return self.tenant.graph

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.policy.interval)
            try:
                await self.deliver_due()
            except Exception:  # the loop must outlive any one bad delivery
                log.exception("graph delivery round failed")

    def state_of(self, url: str, now: float) -> str:
        if self.dropping_until.get(url, 0) > now:
            return "drop"
        recent = [slow for at, slow in self.answers[url] if now - at <= self.policy.window]
        share = sum(recent) / len(recent) if recent else 0.0
        if share > self.policy.drop_share:
            self.dropping_until[url] = now + self.policy.drop_for
            return "drop"
        return "slow" if share > self.policy.slow_share else "ok"

    async def deliver_due(self, *, force: bool = False) -> dict[str, int]:
        async with self._lock:
            now = time.monotonic()
            held = {s.id for s in self.graph.subscriptions.values() if s.needs_reauthorization}
            due = [p for p in self.graph.pending if (force or p.due <= now) and p.subscription_id not in held]
            self.graph.pending = [p for p in self.graph.pending if p not in due]
            batches: dict[str, list[PendingGraphNotification]] = defaultdict(list)
            for pending in due:
                if pending.subscription_id not in self.graph.subscriptions:
                    continue
                state = self.state_of(pending.url, now)
                if state == "drop":
                    self.tenant.delivery["graphDropped"] += 1
                    continue
                if state == "slow" and not force and pending.attempts == 0 and pending.first_attempt is None:
                    pending.first_attempt, pending.due = now, now + self.policy.slow_delay
                    self.graph.pending.append(pending)
                    continue
                batches[pending.url].append(pending)
            sent = 0
            for url, entries in batches.items():
                if await self.post(url, [p.entry for p in entries]):
                    sent += 1
                    self.tenant.delivery["graphDelivered"] += len(entries)
                else:
                    self._retry(entries, now)
            return {"requests": sent, "pending": len(self.graph.pending)}

    async def post(self, url: str, entries: list[dict[str, Any]]) -> bool:
        self.tenant.delivery["graphRequests"] += 1
        started = time.monotonic()
        try:
            answer = await self.http.post(url, json={"value": entries}, timeout=self.policy.timeout)
        except httpx.HTTPError as error:
            log.warning("graph delivery to %s failed: %s", url, type(error).__name__)
            self.answers[url].append((started, True))
            return False
        self.answers[url].append((started, time.monotonic() - started > self.policy.timeout))
        return 200 <= answer.status_code < 300

    def _retry(self, entries: list[PendingGraphNotification], now: float) -> None:
        for pending in entries:
            pending.first_attempt = pending.first_attempt or now
            pending.attempts += 1
            if now - pending.first_attempt > self.policy.retry_for:
                self.tenant.delivery["graphExpired"] += 1
                continue
            pending.due = now + self.policy.retry_base * 2 ** (pending.attempts - 1)
            self.graph.pending.append(pending)


V = "/v1.0"
routes: list[tuple[str, Endpoint, list[str], str]] = [
    (V + "/users/{user}/drive", user_drive, ["GET"], "GetDrive"),
    (V + "/drives/{drive}/root:/{path:path}:/content", upload, ["PUT"], "UploadDriveItem"),
    (V + "/drives/{drive}/root/delta", drive_delta, ["GET"], "DriveDelta"),
    (V + "/drives/{drive}/items/{item}", drive_item, ["GET", "PATCH", "DELETE"], "DriveItem"),
    (V + "/users/{user}/mailFolders('{folder}')/messages", folder_messages, ["POST"], "CreateMessage"),
    (V + "/users/{user}/mailFolders/{folder}/messages", folder_messages, ["POST"], "CreateMessage"),
    (V + "/users/{user}/mailFolders('{folder}')/messages/delta", messages_delta, ["GET"], "MessagesDelta"),
    (V + "/users/{user}/mailFolders/{folder}/messages/delta", messages_delta, ["GET"], "MessagesDelta"),
    (V + "/users/{user}/events", events, ["POST"], "CreateEvent"),
    (V + "/users/{user}/calendarView/delta", calendar_delta, ["GET"], "EventsDelta"),
    (V + "/users/{user}/{collection}/{item}", outlook_item, ["GET", "PATCH", "DELETE"], "OutlookItem"),
    (V + "/subscriptions", subscriptions, ["GET", "POST"], "GraphSubscriptions"),
    (V + "/subscriptions/{subscription_id}", subscription, ["GET", "PATCH", "DELETE"], "GraphSubscription"),
    (V + "/subscriptions/{subscription_id}/reauthorize", reauthorize, ["POST"], "Reauthorize"),
]


def graph_endpoint(operation: str, endpoint: Endpoint) -> Endpoint:
    """Bearer token, counters, injected faults and Graph's error bodies for every Graph call."""

    async def handle(request: Request) -> Response:
        tenant = request.app.state.tenant
        request_id = str(uuid.uuid4())
        tenant.calls[operation] += 1
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        app_id = tenant.app_of(token.strip(), time.time()) if scheme.lower() == "bearer" else None
        if app_id is None:
            return graph_error_response(
                GraphError(401, "InvalidAuthenticationToken", "Access token is empty or has expired."),
                request_id,
            )
        fault = tenant.take_fault("graph", operation, request.url.path, app_id)
        if fault is not None:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            return graph_error_response(
                GraphError(
                    fault.status,
                    "TooManyRequests" if fault.status == 429 else "serviceNotAvailable",
                    "Injected by the emulator.",
                    headers,
                ),
                request_id,
            )
        request.state.app_id = app_id
        try:
            response = await endpoint(request)
        except GraphError as error:
            return graph_error_response(error, request_id)
        response.headers["request-id"] = request_id
        return response

    return handle


graph_routes = [
    Route(path, graph_endpoint(name, endpoint), methods=methods) for path, endpoint, methods, name in routes
]
