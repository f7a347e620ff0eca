"""`POST /v1.0/$batch`: Graph's JSON batching.

Up to 20 requests, each with an `id` unique in the batch (compared without case), a `method`, a
`url` relative to the version root, `headers` (with `Content-Type` whenever there is a `body`)
and `dependsOn`. Each runs through the emulator itself with the batch's bearer token, so it is
checked, counted and faulted like any other call; a request whose dependency failed is answered
`424 Failed Dependency`. The batch itself answers 200 with one entry per request in `responses`;
JSON bodies come back as JSON, any other body base64-encoded.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import bad_request
from .http import body_of

MAX_REQUESTS = 20
_PASSED_HEADERS = ("content-type", "location", "retry-after", "etag")


def _steps(body: dict[str, Any]) -> list[dict[str, Any]]:
    steps = body.get("requests")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
        raise bad_request("Invalid batch payload format.", "BadRequest")
    if len(steps) > MAX_REQUESTS:
        raise bad_request(
            f"The batch has {len(steps)} requests; at most {MAX_REQUESTS} are allowed.", "BadRequest"
        )
    seen: set[str] = set()
    for step in steps:
        step_id, method, url = step.get("id"), step.get("method"), step.get("url")
        if not all(isinstance(value, str) and value for value in (step_id, method, url)):
            raise bad_request("Each request in a batch needs an id, a method and a url.", "BadRequest")
        if str(step_id).lower() in seen:
            raise bad_request(f"The batch has more than one request with the id '{step_id}'.", "BadRequest")
        headers = step.get("headers") or {}
        if "body" in step and not any(name.lower() == "content-type" for name in headers):
            raise bad_request(
                "A request in a batch with a body must have a Content-Type header.", "BadRequest"
            )
        unknown = [d for d in step.get("dependsOn") or [] if str(d).lower() not in seen]
        if unknown:
            raise bad_request(
                f"The request '{step_id}' depends on an unknown or later request.", "BadRequest"
            )
        seen.add(str(step_id).lower())
    return steps


def _content(step: dict[str, Any]) -> bytes | None:
    if "body" not in step:
        return None
    body = step["body"]
    content_type = next(v for k, v in (step.get("headers") or {}).items() if k.lower() == "content-type")
    if "json" in content_type.lower():
        return json.dumps(body).encode()
    if isinstance(body, str):
        try:
            return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            pass
    raise bad_request("The body of a non-JSON request in a batch must be base64-encoded.", "BadRequest")


def _answer(step_id: str, response: httpx.Response) -> dict[str, Any]:
    headers = {name: value for name, value in response.headers.items() if name.lower() in _PASSED_HEADERS}
    entry: dict[str, Any] = {"id": step_id, "status": response.status_code, "headers": headers}
    if response.content:
        if "json" in response.headers.get("content-type", ""):
            entry["body"] = response.json()
        else:
            entry["body"] = base64.b64encode(response.content).decode()
    return entry


def _failed_dependency(step_id: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "status": 424,
        "headers": {"Content-Type": "application/json"},
        "body": {
            "error": {"code": "FailedDependency", "message": "The dependency failed.", "innerError": {}}
        },
    }


async def batch(request: Request) -> Response:
    steps = _steps(await body_of(request))
    authorization = request.headers.get("Authorization", "")
    statuses: dict[str, int] = {}
    answers = []
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url=str(request.base_url)) as client:
        for step in steps:
            step_id = step["id"]
            if any(statuses.get(str(d).lower(), 200) >= 400 for d in step.get("dependsOn") or []):
                answers.append(_failed_dependency(step_id))
                statuses[step_id.lower()] = 424
                continue
            headers = {"Authorization": authorization, **(step.get("headers") or {})}
            response = await client.request(
                step["method"].upper(),
                "/v1.0/" + step["url"].lstrip("/"),
                headers=headers,
                content=_content(step),
            )
            answers.append(_answer(step_id, response))
            statuses[step_id.lower()] = response.status_code
    return JSONResponse({"responses": answers})
