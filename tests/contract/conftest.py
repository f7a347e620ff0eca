"""What the contract tests share: an emulator of their own, and a notification URL that answers
the validation call as the service does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from local.processes import free_port
from local.stack import Ports, Stack


@pytest.fixture(scope="session")
def echo_url() -> Iterator[str]:
    """Echoes SharePoint's `validationtoken` and Graph's `validationToken` as `text/plain`."""

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            token = (query.get("validationtoken") or query.get("validationToken") or [""])[0]
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200 if token else 202)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(token.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/notifications"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    stack = Stack(ports=Ports(emulator=free_port()))
    try:
        stack.start_emulator()
        yield stack.emulator_url
    finally:
        stack.stop()
