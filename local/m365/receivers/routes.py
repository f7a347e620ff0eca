"""The other end of the connectors: receivers that check what Teams and connector endpoints check,
and answer with their codes.

    POST /_receivers/teams-workflow/{name}   Teams workflow ("When a Teams webhook request is
                                             received"): message envelope, Adaptive Card valid
                                             against the official 1.5 schema, at most 28 KB, at most
                                             4 requests a second; 202
    POST /_receivers/message-card/{name}     legacy connector: MessageCard with summary or text;
                                             200 with body "1", errors (throttling too) in a 200 body
    POST /_receivers/webhook/{name}          Standard Webhooks receiver: the signature verified with
                                             the `standardwebhooks` library; 204, 401 if it fails

Tests steer each receiver: `POST /_receivers/{kind}/{name}/behaviour` `{"status", "times",
"retryAfter", "delaySeconds"}` (fail, throttle, time out, 410); `POST …/secret` `{"secret"}` for a
webhook; `POST …/require-token` makes a workflow require an Entra bearer token (one the emulator
issued), as a trigger restricted to "Any user in my tenant" does; `GET /_receivers/{kind}/{name}`
lists what arrived and whether it was valid.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..endpoint import bearer_app
from .cards import message_card_problem, teams_problems

TEAMS_REQUESTS_PER_SECOND = 4
KINDS = ("teams-workflow", "message-card", "webhook")
OAUTH_CLAIMS_MESSAGE = (
    "One or more claims either missing or does not match with the open authentication access control policy."
)


@dataclass
class Behaviour:
    status: int
    times: int
    retry_after: int | None = None
    delay_seconds: float = 0.0


@dataclass
class Receiver:
    kind: str
    received: list[dict[str, Any]] = field(default_factory=list)
    behaviours: deque[Behaviour] = field(default_factory=deque)
    secrets: list[str] = field(default_factory=list)
    request_times: deque[float] = field(default_factory=deque)
    # A workflow whose trigger allows "Any user in my tenant": posts need an Entra bearer token.
    requires_token: bool = False


_receivers: dict[tuple[str, str], Receiver] = defaultdict(lambda: Receiver(""))


def _receiver(request: Request) -> Receiver:
    kind, name = request.path_params["kind"], request.path_params["name"]
    if kind not in KINDS:
        raise HTTPException(404, f"no receiver kind {kind!r}: one of {', '.join(KINDS)}")
    receiver = _receivers[(kind, name)]
    receiver.kind = kind
    return receiver


async def receive(request: Request) -> Response:
    receiver = _receiver(request)
    raw = await request.body()
    now = time.monotonic()
    receiver.request_times.append(now)
    while receiver.request_times and now - receiver.request_times[0] > 1.0:
        receiver.request_times.popleft()
    entry: dict[str, Any] = {"headers": dict(request.headers), "body": raw.decode("utf-8", "replace")}
    behaviour = receiver.behaviours[0] if receiver.behaviours else None
    if behaviour is not None:
        behaviour.times -= 1
        if behaviour.times <= 0:
            receiver.behaviours.popleft()
        if behaviour.delay_seconds:
            await asyncio.sleep(behaviour.delay_seconds)
        entry["answered"] = behaviour.status
        receiver.received.append(entry)
        headers = {"Retry-After": str(behaviour.retry_after)} if behaviour.retry_after is not None else {}
        if receiver.kind == "message-card" and behaviour.status == 429:
            # Connector endpoints report throttling inside a 200.
            text = "Microsoft Teams endpoint returned HTTP error 429 with ContextId tcid=0,server=emulator"
            return PlainTextResponse(text, 200, headers=headers)
        return PlainTextResponse(f"injected {behaviour.status}", behaviour.status, headers=headers)
    if receiver.kind == "teams-workflow":
        if receiver.requires_token and bearer_app(request) is None:
            entry.update(answered=401, problems=["no valid Entra bearer token"])
            receiver.received.append(entry)
            return JSONResponse(
                {"error": {"code": "MisMatchingOAuthClaims", "message": OAUTH_CLAIMS_MESSAGE}}, 401
            )
        if len(receiver.request_times) > TEAMS_REQUESTS_PER_SECOND:
            entry.update(answered=429, problems=["over 4 requests a second"])
            receiver.received.append(entry)
            return PlainTextResponse("Too many requests", 429, headers={"Retry-After": "1"})
        status, problems = teams_problems(raw)
        entry.update(answered=status, problems=problems, valid=not problems)
        receiver.received.append(entry)
        return Response(status_code=202) if status == 202 else JSONResponse({"error": problems}, status)
    if receiver.kind == "message-card":
        problem = message_card_problem(raw)
        entry.update(answered=200, problems=[problem] if problem else [], valid=problem is None)
        receiver.received.append(entry)
        return PlainTextResponse(problem or "1", 200)
    return _verify_webhook(receiver, raw, dict(request.headers), entry)


def _verify_webhook(
    receiver: Receiver, raw: bytes, headers: dict[str, str], entry: dict[str, Any]
) -> Response:
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    for secret in receiver.secrets:
        try:
            Webhook(secret).verify(raw, headers)
        except WebhookVerificationError:
            continue
        entry.update(answered=204, valid=True, problems=[])
        receiver.received.append(entry)
        return Response(status_code=204)
    entry.update(answered=401, valid=False, problems=["no signature matches a known secret"])
    receiver.received.append(entry)
    return PlainTextResponse("invalid signature", 401)


async def behaviour(request: Request) -> Response:
    body = await request.json()
    _receiver(request).behaviours.append(
        Behaviour(
            status=int(body.get("status", 500)),
            times=int(body.get("times", 1)),
            retry_after=body.get("retryAfter"),
            delay_seconds=float(body.get("delaySeconds", 0)),
        )
    )
    return Response(status_code=204)


async def require_token(request: Request) -> Response:
    _receiver(request).requires_token = True
    return Response(status_code=204)


async def secret(request: Request) -> Response:
    _receiver(request).secrets.append(str((await request.json())["secret"]))
    return Response(status_code=204)


async def received(request: Request) -> Response:
    receiver = _receiver(request)
    if request.method == "DELETE":
        receiver.received.clear()
        receiver.behaviours.clear()
        return Response(status_code=204)
    return JSONResponse({"value": receiver.received})


def forget_all() -> None:
    _receivers.clear()


routes = [
    Route("/_receivers/{kind}/{name}", receive, methods=["POST"]),
    Route("/_receivers/{kind}/{name}", received, methods=["GET", "DELETE"]),
    Route("/_receivers/{kind}/{name}/behaviour", behaviour, methods=["POST"]),
    Route("/_receivers/{kind}/{name}/secret", secret, methods=["POST"]),
    Route("/_receivers/{kind}/{name}/require-token", require_token, methods=["POST"]),
]
