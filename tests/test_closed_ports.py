"""The tests' closed ports (tests/support/sockets.py) stay closed while a test holds them.

A port probed free and released at once did not: any bind to port 0 could be handed it
back (test_report_width's mesh test found a simulator on its "closed" port, issue 27).
"""

from __future__ import annotations

import errno
import socket

import pytest

from tests.support.helpers import free_port
from tests.support.sockets import closed_port, held_closed_port


def _bind(port: int, *, reuse: bool) -> OSError | None:
    """Try to bind 127.0.0.1:port as a server would: None if it could, else the error."""
    with socket.socket() as sock:
        if reuse:  # as libzmq, asyncio and socketserver do
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc
        return None


@pytest.mark.parametrize("reuse", [False, True])
def test_a_held_closed_port_refuses_connections_and_cannot_be_bound(reuse: bool) -> None:
    with closed_port() as port:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        error = _bind(port, reuse=reuse)
        assert getattr(error, "errno", None) == errno.EADDRINUSE, (
            f"port {port} held by the test, yet a server could bind it: {error!r}"
        )
    assert _bind(port, reuse=False) is None, f"port {port} still held after the block"


def test_held_closed_port_is_held_for_the_rest_of_the_test() -> None:
    port = held_closed_port()
    error = _bind(port, reuse=True)
    assert getattr(error, "errno", None) == errno.EADDRINUSE, f"{port}: {error!r}"


def test_a_released_free_port_is_anybodys() -> None:
    """Why free_port() is only for a server the test binds later: released, any socket
    may take it (here one of ours; on a busy machine, a bind to port 0 anywhere)."""
    port = free_port()
    assert _bind(port, reuse=False) is None, f"{port} was not free after all"
