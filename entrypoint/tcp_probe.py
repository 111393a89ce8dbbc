"""Layer 1: resolve the gateway name and open a TCP connection, classifying every failure.

The name is resolved again on every attempt (a gateway's address may change while we wait).
After connecting we read the first bytes the peer volunteers: a ZeroMQ peer sends its
ZMTP greeting (0xFF ... 0x7F) at once, a service such as SSH sends its banner, and a port
proxy with no backend closes the connection. That tells ``not_zmq`` and ``reset`` apart
from a healthy gateway before any ZeroMQ socket is opened.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
import threading
import time

from entrypoint.config import ip_family
from entrypoint.logs import untrusted
from entrypoint.reasons import AttemptFailed, Reason

ZMTP_SIGNATURE_FIRST = 0xFF
ZMTP_SIGNATURE_LAST = 0x7F
ZMTP_SIGNATURE_LEN = 10
BANNER_EXCERPT = 64

_RESET = {errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE}


@dataclasses.dataclass(frozen=True)
class TcpResult:
    address: str  # the IP literal that answered; ZeroMQ connects to exactly this address
    family: int
    connect_ms: float
    greeting: str  # "zmtp" when the peer sent a ZMTP signature, "silent" when it sent nothing


def resolve(host: str, port: int, timeout_s: float) -> list[tuple[int, str]]:
    """(family, address) pairs for ``host``; a stuck resolver costs at most ``timeout_s``.

    getaddrinfo cannot be interrupted, so names are resolved on a daemon thread while this
    thread waits on an Event, which a signal handler can still interrupt.
    """
    version = ip_family(host)
    if version is not None:
        return [(socket.AF_INET6 if version == 6 else socket.AF_INET, host)]
    outcome: list[object] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            outcome.append(exc)
        done.set()

    threading.Thread(target=lookup, name="mt5-gate-resolve", daemon=True).start()
    if not done.wait(timeout_s):
        raise AttemptFailed("dns", Reason.DNS,
                            f"resolving {host!r} took longer than {timeout_s:g} s")
    result = outcome[0]
    if isinstance(result, socket.gaierror):
        raise AttemptFailed("dns", Reason.DNS, f"cannot resolve {host!r}: {result.strerror}")
    if isinstance(result, BaseException):
        raise AttemptFailed("dns", Reason.DNS, f"cannot resolve {host!r}: {result}")
    assert isinstance(result, list)
    addresses: list[tuple[int, str]] = []
    for family, _type, _proto, _name, sockaddr in result:
        pair = (family, str(sockaddr[0]))
        if pair not in addresses:
            addresses.append(pair)
    if not addresses:
        raise AttemptFailed("dns", Reason.DNS, f"{host!r} resolved to no address")
    return addresses


def reach(host: str, port: int, timeout_s: float, sniff: bool = True) -> TcpResult:
    """Resolve ``host`` and connect to ``port``, all within ``timeout_s``; or AttemptFailed."""
    started = time.monotonic()
    addresses = resolve(host, port, timeout_s)
    left = max(0.001, timeout_s - (time.monotonic() - started))
    return probe_tcp(addresses, port, left, sniff)


def classify_os_error(exc: OSError) -> Reason:
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return Reason.TIMEOUT
    if exc.errno == errno.ECONNREFUSED:
        return Reason.REFUSED
    if exc.errno in _RESET:
        return Reason.RESET
    # EHOSTUNREACH, ENETUNREACH and the rarer routing errors all mean "no path to the host".
    return Reason.UNREACHABLE


def _describe(exc: OSError, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError) and not exc.strerror:
        return f"no answer within {timeout_s:g} s"
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{name}: {exc.strerror}" if name and exc.strerror else str(exc)


def probe_tcp(addresses: list[tuple[int, str]], port: int, timeout_s: float,
              sniff: bool = True) -> TcpResult:
    """Connect to the first address that answers, within ``timeout_s``.

    With ``sniff`` (ZeroMQ peers) also read the peer's unprompted greeting; leave it off
    for client-speaks-first protocols (HTTP, Redis, PostgreSQL), which would stay silent.
    """
    deadline = time.monotonic() + timeout_s
    last: AttemptFailed | None = None
    for family, address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            return _connect_and_sniff(family, address, port, remaining, sniff)
        except AttemptFailed as failure:
            if failure.stage != "tcp":  # the peer answered: its verdict stands
                raise
            last = failure
    raise last or AttemptFailed("tcp", Reason.TIMEOUT, f"no answer within {timeout_s:g} s")


def _connect_and_sniff(family: int, address: str, port: int, timeout_s: float,
                       sniff: bool) -> TcpResult:
    started = time.monotonic()
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout_s)
        try:
            sock.connect((address, port))
        except OSError as exc:
            raise AttemptFailed("tcp", classify_os_error(exc),
                                f"{address}:{port}: {_describe(exc, timeout_s)}") from None
        connect_ms = (time.monotonic() - started) * 1000
        if not sniff:
            return TcpResult(address, family, connect_ms, "not_read")
        remaining = max(0.001, timeout_s - (time.monotonic() - started))
        greeting = _sniff_greeting(sock, address, port, remaining)
        return TcpResult(address, family, connect_ms, greeting)
    finally:
        sock.close()


def _sniff_greeting(sock: socket.socket, address: str, port: int, timeout_s: float) -> str:
    """Read what the peer sends unprompted: a ZMTP signature, a banner, EOF, or nothing."""
    deadline = time.monotonic() + timeout_s
    received = b""
    while len(received) < ZMTP_SIGNATURE_LEN:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(BANNER_EXCERPT - len(received))
        except TimeoutError:
            break
        except OSError as exc:
            raise AttemptFailed("greeting", Reason.RESET,
                                f"{address}:{port} accepted, then {_describe(exc, timeout_s)}"
                                ) from None
        if not chunk:
            if received:
                break
            raise AttemptFailed("greeting", Reason.RESET,
                                f"{address}:{port} accepted the connection and closed it at once")
        received += chunk
        if received[0] != ZMTP_SIGNATURE_FIRST:
            break
    if not received:
        return "silent"  # an HTTP server or a frozen gateway; the ZeroMQ layer decides which
    if received[0] == ZMTP_SIGNATURE_FIRST and (
        len(received) < ZMTP_SIGNATURE_LEN or received[9] == ZMTP_SIGNATURE_LAST
    ):
        return "zmtp"
    raise AttemptFailed("greeting", Reason.NOT_ZMQ,
                        f"{address}:{port} sent {untrusted(received)}, not a ZeroMQ greeting")
