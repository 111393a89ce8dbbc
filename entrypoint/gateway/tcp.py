"""Layer 1: resolve names, open TCP connections, and classify what a peer sends first.

The name is resolved again on every attempt (a gateway's address may change while we wait).

The gateway itself is never probed with a bare TCP connection while it works: a ZeroMQ
server (go-zeromq/zmq4 for one) logs an error for every connection closed half-way through
its greeting, so the ZeroMQ client connects first and this module is only asked why when
that failed: ``connect`` for the errno of a connection libzmq could not make, and
``inspect_greeting`` for what a peer that dropped the ZeroMQ handshake really is (a ZMTP
1.0, 2.0 or 3.x peer and its security mechanism, a banner, a close, or silence).
"""

# The C module that socket.py wraps: all that is used here is the same in both, and
# socket.py's own imports (selectors, array...) cost every healthcheck ~2 ms.
import _socket as socket
import enum
import errno
import threading
import time
from collections.abc import Callable

from entrypoint.addresses import address_text, ip_family, socket_family
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.log.logs import untrusted
from entrypoint.reasons import Reason

ZMTP_SIGNATURE_FIRST = 0xFF
ZMTP_SIGNATURE_LAST = 0x7F
ZMTP_SIGNATURE_LEN = 10
BANNER_EXCERPT = 64
# What libzmq 4 sends first: a ZMTP 3 signature that a ZMTP 1.0 peer reads as an empty
# identity frame; then our major version, after which a ZMTP 3 peer sends its minor version
# and mechanism, and a ZMTP 2.0 peer its revision (1) and socket type.
OUR_SIGNATURE = b"\xff" + b"\x00" * 7 + b"\x01\x7f"
OUR_MAJOR = b"\x03"
MECHANISM_LEN = 20
# How long a peer may take to volunteer its greeting (ZeroMQ peers send it at once).
GREETING_WINDOW_S = 0.5
# After a complete ZMTP 1.0 identity frame, how long the peer must then stay silent (a
# libzmq 2.x peer waits for ours). A server that speaks first in its own protocol sends its
# whole greeting in one go: a MySQL 8 greeting opens with its length (0x4a) and a zero
# byte, a valid-looking identity frame, and then goes on.
ZMTP1_QUIET_S = 0.2
# The longest ZMTP 1.0 identity frame believed (libzmq 2.x identities are at most 255
# bytes): a long-form length beyond it is not an identity.
ZMTP1_MAX_FRAME = 1 + 8 + 1 + 255

_RESET = {errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE}


# A plain slotted class, not a NamedTuple: a result made once per attempt, never compared
# or replaced, and each NamedTuple class costs every healthcheck ~0.1 ms to create.
class TcpResult:
    __slots__ = ("address", "connect_ms", "family")

    def __init__(self, address: str, family: int, connect_ms: float) -> None:
        self.address = address  # the IP literal that answered
        self.family = family
        self.connect_ms = connect_ms


class Greeting(enum.Enum):
    """What a peer sent of its own accord on a fresh TCP connection."""

    ZMTP3 = "ZMTP 3.x"
    ZMTP2 = "ZMTP 2.0"
    ZMTP1 = "ZMTP 1.0"
    BANNER = "a banner"  # bytes that are not ZeroMQ
    CLOSED = "a close"  # accepted, then closed at once
    SILENT = "nothing"  # waits for the client to speak: not a ZeroMQ peer

    @property
    def is_zmq(self) -> bool:
        return self in (Greeting.ZMTP3, Greeting.ZMTP2, Greeting.ZMTP1)


class GreetingSeen:  # a plain slotted class, as TcpResult
    __slots__ = ("excerpt", "kind", "mechanism", "socket_type")

    def __init__(
        self,
        kind: Greeting,
        mechanism: str | None = None,  # ZMTP 3: NULL, PLAIN or CURVE
        excerpt: bytes = b"",
        socket_type: int | None = None,  # ZMTP 2.0: the type its greeting names (REP is 4)
    ) -> None:
        self.kind = kind
        self.mechanism = mechanism
        self.excerpt = excerpt
        self.socket_type = socket_type


def resolve(host: str, port: int, deadline: Deadline) -> list[tuple[int, str]]:
    """(family, address) pairs for ``host``; a stuck resolver costs at most the deadline.

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
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread below
            outcome.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="mt5-gate-resolve", daemon=True).start()
    if not done.wait(deadline.wait_s()):
        raise AttemptFailed(
            "dns", Reason.DNS, f"resolving {host!r} took longer than {deadline.limit_s:g} s"
        )
    result = outcome[0]
    if isinstance(result, socket.gaierror):
        raise AttemptFailed("dns", Reason.DNS, f"cannot resolve {host!r}: {result.strerror}")
    if isinstance(result, (OSError, UnicodeError)):
        raise AttemptFailed("dns", Reason.DNS, f"cannot resolve {host!r}: {result}")
    if isinstance(result, BaseException):  # unexpected: the main flow ends with exit 70
        raise result
    assert isinstance(result, list)
    addresses: list[tuple[int, str]] = []
    for family, _type, _proto, _name, sockaddr in result:
        pair = (family, str(sockaddr[0]))
        if pair not in addresses:
            addresses.append(pair)
    if not addresses:
        raise AttemptFailed("dns", Reason.DNS, f"{host!r} resolved to no address")
    return addresses


def reach(host: str, port: int, deadline: Deadline) -> TcpResult:
    """Resolve ``host`` and connect to ``port``, all before ``deadline``; or AttemptFailed.

    For client-speaks-first services (HTTP, Redis, PostgreSQL); never for a ZeroMQ port."""
    return connect(resolve(host, port, deadline), port, deadline)


def classify_os_error(exc: OSError) -> Reason:
    if isinstance(exc, TimeoutError) or exc.errno == errno.ETIMEDOUT:
        return Reason.TIMEOUT
    if exc.errno == errno.ECONNREFUSED:
        return Reason.REFUSED
    if exc.errno in _RESET:
        return Reason.RESET
    # EHOSTUNREACH, ENETUNREACH and the rarer routing errors all mean "no path to the host".
    return Reason.UNREACHABLE


def _describe(exc: OSError, deadline: Deadline) -> str:
    if isinstance(exc, TimeoutError) and not exc.strerror:
        return f"no answer within {deadline.limit_s:g} s"
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{name}: {exc.strerror}" if name and exc.strerror else str(exc)


def connect(addresses: list[tuple[int, str]], port: int, deadline: Deadline) -> TcpResult:
    """Connect to the first address that answers before ``deadline``, then close."""
    last: AttemptFailed | None = None
    for family, address in addresses:
        if deadline.expired():
            break
        try:
            started = time.monotonic()
            _open(family, address, port, deadline).close()
            return TcpResult(address, family, (time.monotonic() - started) * 1000)
        except AttemptFailed as failure:
            last = failure
    raise last or AttemptFailed("tcp", Reason.TIMEOUT, f"no answer within {deadline.limit_s:g} s")


def _open(family: int, address: str, port: int, deadline: Deadline) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(deadline.wait_s())
        sock.connect((address, port))
    except OSError as exc:
        sock.close()
        raise AttemptFailed(
            "tcp",
            classify_os_error(exc),
            f"{address_text(address, port)}: {_describe(exc, deadline)}",
        ) from None
    return sock


def inspect_greeting(address: str, port: int, deadline: Deadline) -> GreetingSeen:
    """Connect and read what the peer volunteers; for a ZMTP 3 peer, also its mechanism.

    Only for diagnosis, after a ZeroMQ connection to this peer failed: this connection is
    closed part-way through the handshake, which a healthy gateway should never see."""
    sock = _open(socket_family(address), address, port, deadline)
    try:
        received = _read_until(sock, _first_frame_complete, deadline.capped(GREETING_WINDOW_S))
        offered = False
        if received == b"":
            # Silent so far. libzmq speaks first, but a ZeroMQ peer need not: some send
            # their greeting only after reading the client's. Offer ours and listen again;
            # a peer that is not ZeroMQ stays silent, or answers in its own protocol.
            sock.sendall(OUR_SIGNATURE + OUR_MAJOR)
            offered = True
            received = _read_until(sock, _first_frame_complete, deadline.capped(GREETING_WINDOW_S))
        if received is None:  # closed: at once, or (offered) on reading a ZeroMQ greeting
            return GreetingSeen(Greeting.SILENT if offered else Greeting.CLOSED)
        kind = _classify(received)
        if kind is Greeting.ZMTP1:
            kind, received = _one_identity_then_silence(sock, received, deadline)
        if kind is not Greeting.ZMTP3:
            return GreetingSeen(kind, excerpt=received[:BANNER_EXCERPT])
        if not offered:
            # Answer with our signature and major version to learn its version and
            # mechanism.
            sock.sendall(OUR_SIGNATURE + OUR_MAJOR)
        wanted = ZMTP_SIGNATURE_LEN + 2 + MECHANISM_LEN
        more = _read_until(
            sock, lambda got: len(got) >= wanted, deadline.capped(GREETING_WINDOW_S), received
        )
        got = more or received
        if len(got) <= ZMTP_SIGNATURE_LEN:
            return GreetingSeen(Greeting.ZMTP3, excerpt=got[:BANNER_EXCERPT])
        if got[ZMTP_SIGNATURE_LEN] < 3:  # revision 1: ZMTP 2.0, then its socket type
            socket_type = got[ZMTP_SIGNATURE_LEN + 1] if len(got) > ZMTP_SIGNATURE_LEN + 1 else None
            return GreetingSeen(
                Greeting.ZMTP2, excerpt=got[:BANNER_EXCERPT], socket_type=socket_type
            )
        mechanism = got[ZMTP_SIGNATURE_LEN + 2 : wanted].rstrip(b"\x00")
        return GreetingSeen(
            Greeting.ZMTP3, mechanism.decode("ascii", "replace") or None, got[:BANNER_EXCERPT]
        )
    except OSError:
        return GreetingSeen(Greeting.CLOSED)
    finally:
        sock.close()


def _one_identity_then_silence(
    sock: socket.socket, received: bytes, deadline: Deadline
) -> tuple[Greeting, bytes]:
    """ZMTP1 only when the peer sent exactly one complete identity frame and then nothing
    for ZMTP1_QUIET_S (within ``deadline``): what libzmq 2.x sends. Anything more, or a
    frame never completed, is a banner, whatever libzmq made of it (it takes any first
    byte but 0xFF for ZMTP 1.0)."""
    size = _zmtp1_frame_size(received)
    if size is None:
        return Greeting.BANNER, received
    got = _read_until(
        sock, lambda got: len(got) >= size, deadline.capped(GREETING_WINDOW_S), received
    )
    if got is None or len(got) != size:
        return Greeting.BANNER, got or received
    more = _read_until(sock, bool, deadline.capped(ZMTP1_QUIET_S))
    if more:  # it went on talking: not an identity frame, a protocol of its own
        return Greeting.BANNER, got + more
    return Greeting.ZMTP1, got


def _zmtp1_frame_size(received: bytes) -> int | None:
    """The whole size of the identity frame a ZMTP 1.0 greeting announces, length octets
    included; None when it cannot be one. Short form: one length octet L (flags + body),
    so 1 + L; long form: 0xFF and 8 octets big-endian."""
    if received[0] != ZMTP_SIGNATURE_FIRST:
        return 1 + received[0]
    if len(received) < ZMTP_SIGNATURE_LEN - 1:
        return None
    size = 1 + 8 + int.from_bytes(received[1:9], "big")
    return size if size <= ZMTP1_MAX_FRAME else None


def _first_frame_complete(received: bytes) -> bool:
    if received[:1] == b"\xff":
        return len(received) >= ZMTP_SIGNATURE_LEN
    return len(received) >= 2  # enough to tell a ZMTP 1.0 identity frame from a banner


def _read_until(
    sock: socket.socket, enough: Callable[[bytes], bool], deadline: Deadline, received: bytes = b""
) -> bytes | None:
    """Bytes read until ``enough`` or the deadline; None when the peer closed at once."""
    while not (received and enough(received)):
        if deadline.expired():
            break
        sock.settimeout(deadline.wait_s())
        try:
            chunk = sock.recv(BANNER_EXCERPT)
        except TimeoutError:
            break
        if not chunk:
            return received or None
        received += chunk
    return received


def _classify(received: bytes) -> Greeting:
    if not received:
        return Greeting.SILENT
    if received[0] == ZMTP_SIGNATURE_FIRST:
        last = received[ZMTP_SIGNATURE_LEN - 1] if len(received) >= ZMTP_SIGNATURE_LEN else None
        if last in (None, ZMTP_SIGNATURE_LAST):
            return Greeting.ZMTP3  # refined to 2.0 once its version byte is read
        # 0xFF, a 64-bit length and zero flags: a ZMTP 1.0 identity of 255 bytes or more.
        return Greeting.ZMTP1 if last == 0 else Greeting.BANNER
    # ZMTP 1.0 (libzmq 2.x) opens with its identity frame: a length octet counting the
    # flags octet, a zero flags octet, then the identity itself (usually empty).
    length = received[0]
    if len(received) >= 2 and received[1] == 0 and len(received) <= length + 1:
        return Greeting.ZMTP1
    return Greeting.BANNER


def describe_peer(seen: GreetingSeen, where: str) -> str:
    """One phrase for a log line: what the peer at ``where`` sent."""
    if seen.kind is Greeting.BANNER:
        return f"{where} sent {untrusted(seen.excerpt)}, not a ZeroMQ greeting"
    if seen.kind is Greeting.CLOSED:
        return f"{where} accepted the connection and closed it at once"
    if seen.kind is Greeting.SILENT:
        return f"{where} sends no ZeroMQ greeting (it waits for the client to speak)"
    mechanism = f" offering {seen.mechanism}" if seen.mechanism else ""
    return f"{where} is a {seen.kind.value} peer{mechanism}"
