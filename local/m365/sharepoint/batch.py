"""`POST _api/$batch`: OData v3 multipart batches, as SharePoint Online runs them.

Each `application/http` part (alone, or inside a `multipart/mixed` change set) is a whole HTTP
request. SharePoint runs them in order, one by one and not as a transaction, and answers one flat
`multipart/mixed` body with an `application/http` part per request, change sets included. Each
request here goes through the emulator itself, with the batch's bearer token, so it is checked,
counted and faulted like any other call.
"""

from __future__ import annotations

import re
import uuid
from http import HTTPStatus

import httpx
from starlette.requests import Request
from starlette.responses import Response

from . import errors
from .errors import SharePointError

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def _boundary(content_type: str) -> str:
    match = _BOUNDARY.search(content_type)
    if not content_type.lower().startswith("multipart/mixed") or match is None:
        raise SharePointError(
            400, errors.INVALID_CLIENT_QUERY, "The batch request must be multipart/mixed with a boundary."
        )
    return match.group(1)


def _parts(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts between `--boundary` lines, each as (headers, content)."""
    found = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, content = _split_head(chunk.removeprefix(b"\r\n").removeprefix(b"\n"))
        found.append((_headers(head), content.removesuffix(b"\r\n").removesuffix(b"\n")))
    return found


def _split_head(message: bytes) -> tuple[list[str], bytes]:
    """Header lines and the content after the first empty line; clients end lines with CRLF or
    (Python's `email` package) with LF alone, and SharePoint reads both."""
    ends = [(message.find(separator), separator) for separator in (b"\r\n\r\n", b"\n\n")]
    found = [(index, separator) for index, separator in ends if index >= 0]
    if not found:
        return message.decode("latin-1").splitlines(), b""
    index, separator = min(found)
    return message[:index].decode("latin-1").splitlines(), message[index + len(separator) :]


def _headers(lines: list[str]) -> dict[str, str]:
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


def _requests(body: bytes, boundary: str) -> list[bytes]:
    """Every `application/http` part in order, change sets flattened."""
    found = []
    for headers, content in _parts(body, boundary):
        content_type = headers.get("content-type", "")
        if content_type.lower().startswith("multipart/mixed"):
            found.extend(_requests(content, _boundary(content_type)))
        elif content_type.lower().startswith("application/http"):
            found.append(content)
        else:
            raise SharePointError(
                400, errors.INVALID_CLIENT_QUERY, f"The batch part type '{content_type}' is not supported."
            )
    return found


async def _run(client: httpx.AsyncClient, raw: bytes, authorization: str) -> httpx.Response:
    (request_line, *header_lines), content = _split_head(raw)
    verb, _, rest = request_line.partition(" ")
    target = rest.rsplit(" ", 1)[0] if rest.upper().rstrip().endswith(("HTTP/1.1", "HTTP/1.0")) else rest
    url = httpx.URL(target.strip())
    headers = _headers(header_lines)
    headers.setdefault("authorization", authorization)
    headers.pop("content-length", None)
    return await client.request(
        verb.upper(), url.raw_path.decode("ascii"), headers=headers, content=content or None
    )


async def batch(request: Request) -> Response:
    raw_requests = _requests(await request.body(), _boundary(request.headers.get("Content-Type", "")))
    transport = httpx.ASGITransport(app=request.app)
    authorization = request.headers.get("Authorization", "")
    answer_boundary = f"batchresponse_{uuid.uuid4()}"
    chunks: list[bytes] = []
    async with httpx.AsyncClient(transport=transport, base_url=str(request.base_url)) as client:
        for raw in raw_requests:
            answer = await _run(client, raw, authorization)
            reason = HTTPStatus(answer.status_code).phrase
            head = [f"HTTP/1.1 {answer.status_code} {reason}"] + [
                f"{name.upper()}: {value}"
                for name, value in answer.headers.items()
                if name.lower() in ("content-type", "etag", "location", "retry-after")
            ]
            chunks.append(
                f"--{answer_boundary}\r\nContent-Type: application/http\r\n"
                "Content-Transfer-Encoding: binary\r\n\r\n".encode()
                + "\r\n".join(head).encode("latin-1")
                + b"\r\n\r\n"
                + answer.content
                + b"\r\n"
            )
    chunks.append(f"--{answer_boundary}--\r\n".encode())
    return Response(b"".join(chunks), media_type=f"multipart/mixed; boundary={answer_boundary}")
