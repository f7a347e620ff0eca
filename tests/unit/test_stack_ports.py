"""`make run` checks its ports before it starts: taken means something listens there."""

from __future__ import annotations

import socket

from local.processes import port_is_free


def listening() -> socket.socket:
    """A server as uvicorn and Azurite open one: with SO_REUSEADDR."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    return server


def test_a_port_where_something_listens_is_taken():
    with listening() as server:
        assert not port_is_free(server.getsockname()[1])


def test_a_port_left_in_time_wait_by_a_server_that_stopped_is_free():
    server = listening()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end of the connection waits in TIME-WAIT
    client.close()
    server.close()
    with socket.socket() as plain:  # what the check did before: a bind without SO_REUSEADDR
        try:
            plain.bind(("127.0.0.1", port))
            time_wait_blocks_a_plain_bind = False
        except OSError:
            time_wait_blocks_a_plain_bind = True
    assert time_wait_blocks_a_plain_bind
    assert port_is_free(port)
