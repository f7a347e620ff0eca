"""The egress policy: what a sink URL may be, checked at configuration and again at connect time;
no redirect followed; one deadline; a bounded answer."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from functions.core.egress import (
    MAX_ANSWER_BYTES,
    EgressRefused,
    ReceiverUnreachable,
    address_is_public,
    check_url,
    literal_address,
    post_to_receiver,
)
from functions.core.sinks.record import WEBHOOK, Sink
from functions.core.sinks.sender import SinkSender

INTERNAL_URLS = [
    "https://169.254.169.254/metadata/instance",
    "https://168.63.129.16/machine",
    "https://127.0.0.1/",
    "https://127.0.0.2:8443/",
    "https://127.255.255.254/",
    "https://[::1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::127.0.0.1]/",
    "https://[fe80::1]/",
    "https://[fd00::1]/",
    "https://[fc00::1]/",
    "https://[::]/",
    "https://[ff02::1]/",
    "https://[2002:7f00:1::]/",
    "https://[2002:a00:1::]/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[::ffff:169.254.169.254]/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0x7f.0.0.1/",
    "https://0177.0.0.1/",
    "https://017700000001/",
    "https://127.1/",
    "https://127.0.1/",
    "https://0.0.0.0/",
    "https://0/",
    "https://10.0.0.1/",
    "https://10.255.255.255/",
    "https://172.16.0.1/",
    "https://172.31.255.1/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",
    "https://100.127.255.254/",
    "https://224.0.0.1/",
    "https://255.255.255.255/",
    "https://198.18.0.1/",
    "https://192.0.0.1/",
    "https://240.0.0.1/",
    "https://localhost/",
    "https://intranet/",
    "https://printer.local./",
    "http://example.com/hook",
    "ftp://example.com/hook",
    "https://user:pass@example.com/hook",
    "https://example.com:99999/hook",
]


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_an_internal_or_non_https_url_is_refused_at_configuration(url):
    with pytest.raises(EgressRefused):
        check_url(url, allow_loopback_http=False)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "https://prod-12.westeurope.environment.api.powerplatform.com:443/powerautomate/x?sig=abc",
        "https://8.8.8.8/hook",
        "https://[2606:4700:4700::1111]/hook",
    ],
)
def test_a_public_https_url_is_accepted(url):
    assert check_url(url, allow_loopback_http=False) == url


def test_loopback_plain_http_only_when_the_local_stack_allows_it():
    assert check_url("http://127.0.0.1:7072/_receivers/webhook/a", allow_loopback_http=True)
    with pytest.raises(EgressRefused):
        check_url("http://127.0.0.1:7072/_receivers/webhook/a", allow_loopback_http=False)
    with pytest.raises(EgressRefused):
        check_url("http://10.0.0.1/hook", allow_loopback_http=True)


def test_every_ipv4_form_a_resolver_reads_is_read_the_same():
    expected = ipaddress.IPv4Address("127.0.0.1")
    for form in ("2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0x7f.1", "[::ffff:127.0.0.1]"):
        address = literal_address(form)
        assert address is not None and not address_is_public(address), form
    assert literal_address("127.1") == expected


def test_a_name_that_resolves_to_a_private_address_is_refused_at_connect_time(monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(EgressRefused):
        post_to_receiver("https://rebinding.example.com/hook", b"{}", {}, allow_loopback_http=False)


def test_a_loopback_name_is_refused_at_connect_time_when_loopback_is_not_allowed(monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(EgressRefused):
        post_to_receiver("https://looks-public.example.com/hook", b"{}", {}, allow_loopback_http=False)


class Receiver(BaseHTTPRequestHandler):
    """A receiver on loopback whose answer each test chooses through the path."""

    hits: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        Receiver.hits.append(self.path)
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/redirect":
            self.send_response(307)
            self.send_header("Location", "http://127.0.0.2/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.5)
        elif self.path == "/hold":
            time.sleep(3)  # holds the request past the caller's deadline, answering nothing
        elif self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(200 * 1024 * 1024))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(200 * 16):
                    self.wfile.write(chunk)
            except OSError:
                pass
        else:
            self.send_response(202)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Receiver.hits = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_answer_is_returned_with_its_status_and_a_bounded_body():
    with receiver() as base:
        answer = post_to_receiver(f"{base}/ok", b"{}", {}, allow_loopback_http=True)
    assert (answer.status, answer.body_prefix) == (202, b"hello")


def test_a_redirect_is_returned_as_the_3xx_it_is_and_never_followed():
    with receiver() as base:
        answer = post_to_receiver(f"{base}/redirect", b"{}", {}, allow_loopback_http=True)
        assert answer.status == 307
        assert Receiver.hits == ["/redirect"]


def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_deadline():
    with receiver() as base, pytest.raises(ReceiverUnreachable):
        post_to_receiver(f"{base}/drip", b"{}", {}, allow_loopback_http=True, deadline_seconds=1.5)


def test_a_receiver_that_holds_the_request_past_the_deadline_says_how_long_it_held_it():
    with receiver() as base, pytest.raises(ReceiverUnreachable) as held:
        post_to_receiver(f"{base}/hold", b"{}", {}, allow_loopback_http=True, deadline_seconds=1.0)
    assert held.value.deadline_passed and held.value.elapsed >= 1.0


SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_a_sample_sent_to_a_receiver_that_holds_it_says_the_deadline_passed_and_how_long_it_took():
    sender = SinkSender(allow_loopback_http=True, deadline_seconds=1.0)
    with receiver() as base:
        sink = Sink("sink_1", "scope", "sub", WEBHOOK, f"{base}/hold", (), datetime.now(UTC), secret=SECRET)
        outcome = sender.send(sink, "msg_test_1", [], datetime.now(UTC))
    assert (outcome.ok, outcome.deadline_passed, outcome.detail) == (
        False,
        True,
        "no answer within the 1 s deadline",
    )
    assert outcome.elapsed >= 1.0


def test_a_huge_answer_is_read_no_further_than_the_limit():
    with receiver() as base:
        answer = post_to_receiver(f"{base}/huge", b"{}", {}, allow_loopback_http=True)
    assert answer.status == 200
    assert len(answer.body_prefix) == MAX_ANSWER_BYTES


def test_a_closed_port_and_a_refused_name_look_the_same_to_the_caller():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ReceiverUnreachable) as refused:
        post_to_receiver(f"http://127.0.0.1:{port}/x", b"{}", {}, allow_loopback_http=True)
    assert not refused.value.deadline_passed


def test_no_module_of_the_deployed_code_posts_to_a_sink_but_through_the_egress_sender():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "functions"
    raw_http = set()
    calls_egress = set()
    sink_imports: set[str] = set()
    for path in root.rglob("*.py"):
        name = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) and any(
                a.name in ("http.client", "urllib.request") for a in node.names
            ):
                raw_http.add(name)
            if isinstance(node, ast.ImportFrom) and node.module in ("http", "http.client", "urllib.request"):
                raw_http.add(name)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "post_to_receiver":
                calls_egress.add(name)
            if name.startswith("core/sinks/") and isinstance(node, ast.ImportFrom | ast.Import):
                module = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                names = {alias.name for alias in node.names}
                if module in ("requests", "outbound") and names - {"parse_retry_after"}:
                    sink_imports.add(f"{name}: {module}")
    # The lean queue put speaks HTTP itself too, but only to the storage account the settings name.
    assert raw_http == {"core/egress.py", "core/queue_put.py"}
    assert calls_egress == {"core/sinks/sender.py"}
    assert not sink_imports, "sinks send only through the egress sender"
