"""One queue message put over the Queue service's REST API, for the notification intake's hot path.

The storage SDK's `send_message` spends about a millisecond of CPU a call in azure-core's pipeline
(policies, tracing decorators, a requests session) around a request a few hundred bytes long: on
the intake, where a POST must be answered within SharePoint's 5 s and Graph's 3 s under bursts,
that is most of the work. This sends the same request (`PUT`-free `POST …/messages`, the message
base64-encoded as the Functions queue trigger reads it) on a kept-alive connection per thread,
signed as the SDK signs it: Shared Key for an account key, a bearer token for an identity. The
SDK stays for everything else (deletes, the worker's queues, creating queues).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import urlsplit

from .errors import retry_after_header
from .storage_rest import account_key

STORAGE_VERSION = "2021-02-12"
_MESSAGE_ID = re.compile(r"<MessageId>([^<]+)</MessageId>")
_POP_RECEIPT = re.compile(r"<PopReceipt>([^<]+)</PopReceipt>")
# A kept-alive connection the server closed while idle fails on first use: send once more.
_BROKEN = (
    http.client.RemoteDisconnected,
    BrokenPipeError,
    ConnectionResetError,
    http.client.CannotSendRequest,
)


class QueuePutFailed(Exception):
    """The put did not succeed; `status` is the service's (None: no answer), `retry_after` its
    Retry-After in seconds if it gave one."""

    def __init__(self, message: str, *, status: int | None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after

    @property
    def is_outage(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500

    def headers(self) -> dict[str, str]:
        return retry_after_header(self.retry_after)


@dataclass(frozen=True)
class PutReceipt:
    """What a put returns, to take the message back: its id and pop receipt."""

    id: str
    pop_receipt: str


@dataclass(frozen=True)
class SharedKey:
    account: str
    key: bytes

    def authorization(self, method: str, path: str, headers: dict[str, str], length: int) -> str:
        canonical_headers = "".join(
            f"{name}:{headers[name]}\n" for name in sorted(headers) if name.startswith("x-ms-")
        )
        resource = f"/{self.account}{path}"
        string_to_sign = (
            f"{method}\n\n\n{length or ''}\n\n{headers.get('content-type', '')}\n\n\n\n\n\n\n"
            f"{canonical_headers}{resource}"
        )
        signature = hmac.new(self.key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
        return f"SharedKey {self.account}:{base64.b64encode(signature).decode('ascii')}"


class QueuePutter:
    """Puts messages on one queue; thread-safe: a pool of kept-alive connections, each used by one
    put at a time, that `warm` can open before the first request."""

    def __init__(
        self,
        queue_url: str,
        *,
        shared_key: SharedKey | None = None,
        bearer: Callable[[], str] | None = None,
        connect_timeout: float = 1.0,
        read_timeout: float = 1.0,
    ) -> None:
        parts = urlsplit(queue_url.rstrip("/"))
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc
        self._path = f"{parts.path}/messages"
        self._shared_key = shared_key
        self._bearer = bearer
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []
        self._open: set[http.client.HTTPConnection] = set()
        # A putter dropped without close() still closes its sockets, as urllib3's pools do.
        weakref.finalize(self, _close_all, self._open)

    def close(self) -> None:
        """Close every connection (the next put opens a new one)."""
        with self._lock:
            _close_all(self._open)
            self._idle.clear()

    @property
    def idle_connections(self) -> int:
        with self._lock:
            return len(self._idle)

    def warm(self, connections: int = 2) -> None:
        """Open connections ahead of the first puts (TCP and TLS set up off the request path)."""
        opened = [self._new_connection() for _ in range(connections)]
        with self._lock:
            self._idle.extend(opened)

    def put(self, text: str) -> PutReceipt:
        body = (
            "<?xml version='1.0' encoding='utf-8'?><QueueMessage><MessageText>"
            + base64.b64encode(text.encode("utf-8")).decode("ascii")
            + "</MessageText></QueueMessage>"
        ).encode("ascii")
        for attempt in (1, 2):
            try:
                # After a broken one, the other idle connections are as old: a new one.
                connection = self._take() if attempt == 1 else self._new_connection()
            except (OSError, http.client.HTTPException) as error:
                raise QueuePutFailed(f"{type(error).__name__}: {error}", status=None) from None
            try:
                status, reason, answer, retry_after, keep = self._post(connection, body)
            except _BROKEN:
                self._drop(connection)
                if attempt == 2:
                    raise QueuePutFailed("the queue's connection broke twice", status=None) from None
                self._drop_idle()
                continue
            except (OSError, http.client.HTTPException) as error:
                self._drop(connection)
                raise QueuePutFailed(f"{type(error).__name__}: {error}", status=None) from None
            if keep:
                self._give(connection)
            else:
                self._drop(connection)
            break
        if status != 201:
            raise QueuePutFailed(f"HTTP {status} {reason}", status=status, retry_after=retry_after)
        message_id, receipt = _MESSAGE_ID.search(answer), _POP_RECEIPT.search(answer)
        if message_id is None or receipt is None:
            raise QueuePutFailed("the put's answer names no message", status=status)
        return PutReceipt(message_id.group(1), receipt.group(1))

    def _post(
        self, connection: http.client.HTTPConnection, body: bytes
    ) -> tuple[int, str, str, float | None, bool]:
        headers = {
            "content-type": "application/xml",
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-version": STORAGE_VERSION,
        }
        if self._shared_key is not None:
            headers["authorization"] = self._shared_key.authorization("POST", self._path, headers, len(body))
        elif self._bearer is not None:
            headers["authorization"] = f"Bearer {self._bearer()}"
        connection.request(
            "POST", self._path, body=body, headers={**headers, "content-length": str(len(body))}
        )
        if connection.sock is not None:
            connection.sock.settimeout(self._read_timeout)
        response = connection.getresponse()
        answer = response.read().decode("utf-8", "replace")
        retry_after = response.getheader("Retry-After")
        keep = response.getheader("Connection", "").lower() != "close"
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        return response.status, response.reason, answer, wait, keep

    def _take(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new_connection()

    def _give(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if connection in self._open:
                self._idle.append(connection)

    def _new_connection(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        connection = kind(self._netloc, timeout=self._connect_timeout)
        try:
            connection.connect()
        except BaseException:
            connection.close()
            raise
        with self._lock:
            self._open.add(connection)
        return connection

    def _drop_idle(self) -> None:
        """Close the idle connections: the server closes those it kept alive past its timeout
        (Azurite's Node server after 5 s), and one that broke says the others may have too."""
        with self._lock:
            idle, self._idle = self._idle, []
            for connection in idle:
                self._open.discard(connection)
        for connection in idle:
            connection.close()

    def _drop(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            self._open.discard(connection)
        connection.close()


def _close_all(connections: set[http.client.HTTPConnection]) -> None:
    for connection in list(connections):
        connection.close()
    connections.clear()


def putter_for_connection_string(
    connection_string: str, queue: str, *, connect_timeout: float, read_timeout: float
) -> QueuePutter | None:
    """A putter for an account-key connection string; None for anything else
    (`UseDevelopmentStorage=true`, a SAS): the SDK puts those."""
    found = account_key(connection_string, "queue")
    if found is None:
        return None
    return QueuePutter(
        f"{found.endpoint}/{queue}",
        shared_key=SharedKey(found.account, found.key),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
