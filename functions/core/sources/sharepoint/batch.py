"""SharePoint's OData `$batch`, for reads: many GETs in one request, one answer per GET.

SharePoint counts each request inside a batch against the app's throttling budget, so a batch
saves round trips, not budget. A part that fails is reported as its own status; the batch as a
whole fails only when SharePoint refuses it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# SharePoint Online takes up to 100 requests in one batch.
MAX_BATCH_REQUESTS = 100
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_STATUS = re.compile(r"^HTTP/1\.[01] (\d{3})")


@dataclass(frozen=True)
class BatchAnswer:
    status: int
    body: Any  # the part's JSON, or None


def batch_body(urls: Sequence[str], accept: str) -> tuple[str, bytes]:
    """The Content-Type and body of a batch of GETs (absolute URLs)."""
    boundary = f"batch_{uuid.uuid4()}"
    parts = [
        f"--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        f"GET {url} HTTP/1.1\r\nAccept: {accept}\r\n\r\n"
        for url in urls
    ]
    body = "".join(parts) + f"--{boundary}--\r\n"
    return f"multipart/mixed; boundary={boundary}", body.encode("utf-8")


def batch_answers(content_type: str, body: bytes) -> list[BatchAnswer]:
    """The answers of a batch response, in the order of its requests."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise ValueError("the batch response names no boundary")
    answers = []
    for chunk in body.split(b"--" + match.group(1).encode())[1:]:
        if chunk.startswith(b"--"):
            break
        _, _, http_message = _split(chunk.lstrip(b"\r\n"))
        status_line, _, content = _split(http_message)
        status = _STATUS.match(status_line.decode("latin-1"))
        if status is None:
            raise ValueError("a batch part without an HTTP status line")
        text = content.strip()
        answers.append(BatchAnswer(int(status.group(1)), json.loads(text) if text else None))
    return answers


def _split(message: bytes) -> tuple[bytes, bytes, bytes]:
    """(first line, other header lines, content) of a MIME or HTTP message."""
    head, separator, content = message.partition(b"\r\n\r\n")
    if not separator:
        head, _, content = message.partition(b"\n\n")
    first, _, rest = head.partition(b"\r\n")
    return first, rest, content
