"""The one way out to a URL a user gave us (a connector's, a webhook's): `post_to_receiver`.

Policy, enforced here and nowhere else:
- https to a public address only. The host is resolved here and every address it resolves to is
  checked at connect time (DNS can change between configuration and delivery); the connection goes
  to the checked address, while TLS still verifies the name. Loopback plain http only when the
  caller allows it (the local stack's emulator receivers).
- No redirect is followed: a 3xx is a failure (Standard Webhooks says so too).
- One overall deadline for connect, send and read, and at most MAX_ANSWER_BYTES of the answer.
- The caller gets the status, a few headers and the first bytes of the body for its own decisions
  (a connector's "1"); nothing of the answer is meant to be shown to a user.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

MAX_ANSWER_BYTES = 64 * 1024
DEFAULT_DEADLINE_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5.0
USER_AGENT = "m365-webhooks/1.0 (+connectors)"

# Azure's platform addresses: the wire server (168.63.129.16) and the instance metadata service
# (169.254.169.254, link-local anyway). Never a receiver.
_AZURE_PLATFORM = (ipaddress.ip_network("168.63.129.16/32"), ipaddress.ip_network("169.254.169.254/32"))
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


class EgressRefused(ValueError):
    """The URL or the address it resolves to is not one we may send to."""


class ReceiverUnreachable(Exception):
    """No answer: the name did not resolve, the connection failed, TLS failed, or the deadline
    passed. `reason` is for the log; what users see is one fixed phrase for all of them, so the
    answer cannot be used to scan ports."""

    def __init__(self, reason: str, *, elapsed: float = 0.0, deadline_passed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        # How long the attempt held us, and whether it ended because the deadline passed.
        self.elapsed = elapsed
        self.deadline_passed = deadline_passed


@dataclass(frozen=True)
class ReceiverAnswer:
    status: int
    headers: Mapping[str, str]
    # At most MAX_ANSWER_BYTES; for the caller's decisions only, never to be echoed.
    body_prefix: bytes
    elapsed: float


def address_is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast, and none of the addresses that lead inside: loopback, private,
    link-local, unique-local, CGNAT, unspecified, multicast, reserved, Azure's platform addresses,
    and IPv6 forms that embed an IPv4 address (mapped, compatible, 6to4, Teredo, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = (
            address.ipv4_mapped or (address.sixtofour) or (address.teredo[1] if address.teredo else None)
        )
        if embedded is None and address.packed[:12] == bytes(12):  # IPv4-compatible ::a.b.c.d
            embedded = ipaddress.IPv4Address(address.packed[12:])
        if embedded is None and address in ipaddress.ip_network("64:ff9b::/96"):
            embedded = ipaddress.IPv4Address(address.packed[12:])
        if embedded is not None:
            return address_is_public(embedded)
    if any(address in network for network in _AZURE_PLATFORM):
        return False
    return bool(address.is_global) and not (
        address.is_multicast or address.is_reserved or address.is_loopback or address.is_link_local
    )


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, in every form a resolver accepts: dotted, decimal
    (2130706433), hex (0x7f.1), octal (0177.0.0.1) and short (127.1) IPv4, and IPv6."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    try:
        # inet_aton reads the classic BSD forms that browsers and resolvers also accept.
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except (OSError, ValueError):
        return None


def check_url(url: str, *, allow_loopback_http: bool) -> str:
    """Refuse at configuration what would be refused at connect time; returns the URL."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parts.username or parts.password:
        raise EgressRefused("url must be an absolute https URL without credentials")
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number or out of range)
    except ValueError:
        raise EgressRefused("url has an invalid port") from None
    if _is_local_http(parts.scheme, host, allow_loopback_http):
        return url
    if parts.scheme != "https":
        raise EgressRefused("url must be https (plain http is allowed only to loopback, and only locally)")
    address = literal_address(host)
    if address is not None and not address_is_public(address):
        raise EgressRefused("url must lead to a public address, not a loopback, private or reserved one")
    if address is None and (host.endswith(".") or "." not in host or host.lower() == "localhost"):
        raise EgressRefused("url must name a public host by its full DNS name")
    return url


def post_to_receiver(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    allow_loopback_http: bool,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
) -> ReceiverAnswer:
    """POST `body` under the egress policy. Raises EgressRefused (policy) or ReceiverUnreachable
    (no answer in time); any HTTP answer, 3xx included, is returned for the caller to judge."""
    check_url(url, allow_loopback_http=allow_loopback_http)
    parts = urlsplit(url)
    host = parts.hostname or ""
    local = _is_local_http(parts.scheme, host, allow_loopback_http)
    port = parts.port or (80 if parts.scheme == "http" else 443)
    started = time.monotonic()
    deadline = started + deadline_seconds
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, port, timeout=CONNECT_TIMEOUT_SECONDS, context=_tls_context()
        )
    else:
        connection = http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT_SECONDS)
    connection._create_connection = _checked_connector(local)  # type: ignore[attr-defined]
    # A receiver that drips its answer a byte at a time is cut off at the deadline, whatever each
    # read's own timeout. (http.client lets go of the socket once the headers are read when the
    # answer ends the connection, so the watchdog keeps its own reference.)
    sent_on: list[socket.socket] = []
    watchdog = threading.Timer(deadline_seconds, _cut, args=(connection, sent_on))
    watchdog.daemon = True
    watchdog.start()
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    try:
        connection.request(
            "POST",
            target,
            body=body,
            headers={"User-Agent": USER_AGENT, **headers, "Content-Length": str(len(body))},
        )
        if connection.sock is not None:
            sent_on.append(connection.sock)
        response = connection.getresponse()
        prefix = response.read(MAX_ANSWER_BYTES)
        if time.monotonic() > deadline:
            raise ReceiverUnreachable(
                "the answer did not complete before the deadline",
                elapsed=time.monotonic() - started,
                deadline_passed=True,
            )
        return ReceiverAnswer(
            status=response.status,
            headers={name.lower(): value for name, value in response.getheaders()},
            body_prefix=prefix,
            elapsed=time.monotonic() - started,
        )
    except EgressRefused:
        raise
    except (OSError, http.client.HTTPException) as error:
        ended = time.monotonic()
        late = ended >= deadline
        reason = "the deadline passed" if late else f"{type(error).__name__}"
        raise ReceiverUnreachable(reason, elapsed=ended - started, deadline_passed=late) from None
    finally:
        watchdog.cancel()
        connection.close()


def _is_local_http(scheme: str, host: str, allow_loopback_http: bool) -> bool:
    return allow_loopback_http and scheme == "http" and host.lower() in _LOOPBACK_NAMES


def _checked_connector(local: bool) -> Callable[..., socket.socket]:
    """A replacement for socket.create_connection that resolves the name itself, refuses any
    address outside the policy, and connects to the address it checked."""

    def connect(
        address: tuple[str, int], timeout: float | None = None, source_address: object = None
    ) -> socket.socket:
        host, port = address
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise ReceiverUnreachable(f"the name did not resolve: {type(error).__name__}") from None
        last: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            candidate = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            if not (address_is_public(candidate) or (local and candidate.is_loopback)):
                raise EgressRefused("the receiver's name resolves to an address that is not public")
            sock = socket.socket(family, kind, proto)
            sock.settimeout(timeout)
            try:
                sock.connect(sockaddr)
                return sock
            except OSError as error:
                sock.close()
                last = error
        raise last or OSError("no address to connect to")

    return connect


def _cut(connection: http.client.HTTPConnection, sent_on: list[socket.socket]) -> None:
    sock = connection.sock or (sent_on[0] if sent_on else None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()
