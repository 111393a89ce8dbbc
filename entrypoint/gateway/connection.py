"""What the socket monitor has told us about one ZeroMQ connection, and what it means.

libzmq makes the TCP connection itself and reports its progress as monitor events
(connected, retried, handshake succeeded or failed, disconnected). ``Connection`` applies
them; only when they are ambiguous does it ask the TCP layer (the errno of a refused
connect, or what a peer that dropped the handshake really is). A legacy peer (ZMTP 1.0 or
2.0: libzmq 2.x/3.x, JeroMQ 0.3) has no security handshake, so the monitor reports its
connection but never a handshake.
"""

from __future__ import annotations

import errno
import struct
import time
from collections.abc import Iterator
from typing import Any

import zmq

from entrypoint.addresses import address_text, socket_family
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.gateway.tcp import (
    Greeting,
    GreetingSeen,
    connect,
    describe_peer,
    inspect_greeting,
)
from entrypoint.reasons import Reason

MONITORED = (
    zmq.EVENT_CONNECTED
    | zmq.EVENT_CONNECT_RETRIED
    | zmq.EVENT_CLOSED
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
)
# Which peer each of our socket types needs, for "a socket of a type we cannot talk to".
_PEERS_OF: dict[int, str] = {
    zmq.REQ: "REP or ROUTER",
    zmq.PUSH: "PULL",
    zmq.PULL: "PUSH",
    zmq.SUB: "PUB",
}


def peers_of(kind: int) -> str:
    return _PEERS_OF.get(kind, "another type")


# The socket types a ZMTP 2.0 greeting may name for each of ours (ZMTP 2.0 numbers them as
# libzmq does: REP 4, ROUTER 6, PULL 7, PUSH 8, PUB 1).
_COMPATIBLE: dict[int, frozenset[int]] = {
    zmq.REQ: frozenset({zmq.REP, zmq.ROUTER}),
    zmq.PUSH: frozenset({zmq.PULL}),
    zmq.PULL: frozenset({zmq.PUSH}),
    zmq.SUB: frozenset({zmq.PUB}),
}
SECRETS_OPT_IN = "GATE_LEGACY_SECRETS=allow"


class Connection:
    """What the monitor has told us about one socket's connection so far; asks the TCP
    layer only when the events alone cannot say what went wrong."""

    def __init__(
        self, address: str, port: int, curve: bool, stage: Deadline, role: str = ""
    ) -> None:
        self.address = address
        self.role = role  # "reply port " for a two-socket transport's second socket
        self.port = port
        self.curve = curve
        self.connected_at: float | None = None
        self.reached_at: float | None = None  # the latest connection or handshake
        self.retried = False
        # False on a socket that holds a secret: its one connection is never replaced.
        self.reconnects = True
        self.handshake = False
        self.disconnected = False
        self.failure: AttemptFailed | None = None
        # A handshake dropped by a ZeroMQ peer without detail: a restarting gateway, or the
        # peer noticing a socket-type mismatch first. libzmq reconnects; the next
        # connection (or the timeout) decides.
        self.dropped_in_handshake = False
        self.seen: GreetingSeen | None = None
        self._expect_disconnect = False
        self.stage = stage  # the deadline of the stage in progress: connect, then reply

    @property
    def where(self) -> str:
        return self.role + address_text(self.address, self.port)

    def apply(self, event: int, value: int) -> None:
        now = time.monotonic()
        if event == zmq.EVENT_CONNECTED:
            self.connected_at = self.connected_at or now
            self.reached_at = now
        elif event in (zmq.EVENT_CONNECT_RETRIED, zmq.EVENT_CLOSED):
            if self.connected_at is None and not self.retried:
                self._connect_failed()
            self.retried = True
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.handshake = True
            self.reached_at = now
        elif event in HANDSHAKE_FAILURES:
            self._handshake_failed(event, value)
        elif event == zmq.EVENT_DISCONNECTED:
            if self._expect_disconnect:  # the handshake failure's own disconnect
                self._expect_disconnect = False
            else:
                self.disconnected = True

    def _connect_failed(self) -> None:
        """libzmq could not connect, and does not say why: ``_diagnose_connect_failure``
        finds out, unless the process is out of descriptors for a socket of its own."""
        try:
            self._diagnose_connect_failure()
        except OSError as exc:
            if exc.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            # No descriptor for a socket of our own: the process is at its limit for a
            # moment (libzmq closes a previous socket's descriptors in its own thread, and
            # `ulimit -n 16` leaves little room). libzmq retries the connection itself; the
            # attempt's deadline bounds the wait. No diagnosis is better than a crash.

    def _diagnose_connect_failure(self) -> None:
        """Connect once ourselves for the errno. If that connect succeeds, either the
        gateway has just come up (keep waiting) or what listens there resets every
        connection, faster than libzmq's connect completes on a loaded machine: its
        greeting (a close at once) tells which."""
        family = socket_family(self.address)
        try:
            connect([(family, self.address)], self.port, self.stage)
            if self.inspect().kind is Greeting.CLOSED:
                self.failure = AttemptFailed(
                    "greeting", Reason.RESET, describe_peer(self.inspect(), self.where)
                )
        except AttemptFailed as failure:
            if failure.reason is Reason.RESET:
                # The handshake completed and the peer reset the connection before our
                # connect() returned (a port proxy without a backend, seen on a busy
                # machine): TCP works, what listens there drops every connection.
                failure = AttemptFailed(
                    "greeting",
                    Reason.RESET,
                    describe_peer(GreetingSeen(Greeting.CLOSED), self.where),
                )
            if self.role:
                failure.error = f"{self.role}{failure.error}"
            self.failure = failure

    def inspect(self) -> GreetingSeen:
        if self.seen is None:
            try:
                self.seen = inspect_greeting(self.address, self.port, self.stage)
            except AttemptFailed:  # it stopped listening since: it went away
                self.seen = GreetingSeen(Greeting.CLOSED)
        return self.seen

    def _handshake_failed(self, event: int, value: int) -> None:
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            self.failure = AttemptFailed(
                "zmq",
                Reason.AUTH,
                f"the gateway rejected this client's CURVE key (ZAP status {value})",
            )
        elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
                self.failure = AttemptFailed("zmq", Reason.AUTH, _mismatch(self.curve))
            else:
                self.failure = AttemptFailed(
                    "zmq", Reason.PROTOCOL, f"ZeroMQ handshake failed: protocol error {value:#x}"
                )
        else:  # EVENT_HANDSHAKE_FAILED_NO_DETAIL: the events cannot say; the greeting can
            self._expect_disconnect = True
            self.dropped(self.inspect())

    def dropped(self, seen: GreetingSeen) -> None:
        """Decide what a peer that did not complete the ZeroMQ handshake is, from what it
        sent: not ZeroMQ, a security mismatch, or a ZeroMQ peer that dropped (retry)."""
        if not seen.kind.is_zmq:  # silent too: it dropped libzmq's greeting, sends none
            reason = Reason.RESET if seen.kind is Greeting.CLOSED else Reason.NOT_ZMQ
            self.failure = AttemptFailed("greeting", reason, describe_peer(seen, self.where))
        elif self.curve and seen.mechanism != "CURVE":
            offered = seen.mechanism or f"no security ({seen.kind.value})"
            self.failure = AttemptFailed(
                "zmq",
                Reason.AUTH,
                f"CURVE is configured on the gate, but the gateway "
                f"offers {offered}: use CURVE on both sides, or on "
                "neither",
            )
        elif self.curve:
            # A CURVE server that cannot decrypt our HELLO drops the connection without a
            # word: the key we hold for it is not its key.
            self.failure = AttemptFailed(
                "zmq",
                Reason.AUTH,
                "the gateway dropped the CURVE handshake: the server key is probably wrong",
            )
        elif seen.mechanism not in (None, "NULL"):
            self.failure = AttemptFailed(
                "zmq", Reason.AUTH, f"the gateway requires {seen.mechanism} security"
            )
        else:
            self.dropped_in_handshake = True

    def refuse_secret(self, kind: int, legacy_allowed: bool) -> AttemptFailed | None:
        """Why a request carrying a secret may not go to this peer yet, or None when the
        peer proved it is ZeroMQ with a socket type ours talks to: a ZMTP 3 handshake on
        this very connection (libzmq checks the type in it; with CURVE, the key too). A
        legacy peer proves nothing on it: libzmq reports no handshake for ZMTP 2.0 or 1.0,
        so a ZMTP 2.0 greeting naming a compatible type is read on a connection of the
        gate's own, which says nothing of the one the secret would go over, and a ZMTP 1.0
        greeting names no type at all. Either only with the documented opt-in."""
        if self.handshake:
            return None
        seen = self.seen
        legacy = seen is not None and (
            seen.kind is Greeting.ZMTP1
            or (
                seen.kind is Greeting.ZMTP2
                and seen.socket_type in _COMPATIBLE.get(kind, frozenset())
            )
        )
        if legacy and legacy_allowed:
            return None
        if seen is not None and seen.kind is Greeting.ZMTP2 and legacy:
            return AttemptFailed(
                "zmq",
                Reason.PROTOCOL,
                f"{self.where} is a ZMTP 2.0 peer (libzmq 3.x, JeroMQ 0.3), which proves "
                "its socket type only on a connection of the gate's own, not on the one a "
                f"request would go over, and the request carries a $file: secret: not sent. "
                f"{SECRETS_OPT_IN} sends it anyway",
            )
        if seen is not None and seen.kind is Greeting.ZMTP1:
            return AttemptFailed(
                "zmq",
                Reason.PROTOCOL,
                f"{self.where} is a ZMTP 1.0 peer (libzmq 2.x), which cannot "
                "prove it is the gateway, and the request carries a $file: "
                f"secret: not sent. {SECRETS_OPT_IN} sends it anyway",
            )
        shown = describe_peer(seen, self.where) if seen is not None else self.where
        return AttemptFailed(
            "zmq",
            Reason.PROTOCOL,
            f"{shown}: not a ZeroMQ peer of a type we talk to "
            f"({peers_of(kind)}); the request carries a $file: secret: "
            "not sent",
        )

    def timed_out(self, waited_s: float) -> AttemptFailed:
        if self.handshake:
            return AttemptFailed(
                "zmq", Reason.NO_REPLY, f"{self.role}no reply within {waited_s:g} s"
            )
        if self.dropped_in_handshake:
            failure = AttemptFailed(
                "zmq", Reason.RESET, "the connection dropped during the ZeroMQ handshake"
            )
            failure.inconclusive = True
            return failure
        if self.connected_at is not None:
            return AttemptFailed(
                "zmq",
                Reason.NO_REPLY,
                f"TCP connected, but no ZeroMQ handshake or reply within "
                f"{waited_s:g} s (gateway frozen or overloaded, a legacy "
                "ZeroMQ peer that did not answer, or a silent non-ZeroMQ "
                "service)",
            )
        return AttemptFailed(
            "tcp", Reason.TIMEOUT, f"{self.where}: no answer within {waited_s:g} s"
        )


def _mismatch(curve: bool) -> str:
    return "security mechanism mismatch: " + (
        "CURVE is configured on the gate, but the gateway does not use CURVE: use CURVE on "
        "both sides, or on neither"
        if curve
        else "the gateway requires CURVE: set GATEWAY_CURVE_SERVER_KEY"
    )


def drain(monitor: zmq.Socket[Any]) -> Iterator[tuple[int, int]]:
    """(event, value) pairs the monitor has queued, without waiting."""
    while monitor.poll(0):
        # Frame 1 of a monitor message is the event id (uint16) and its value (uint32);
        # parsed here because zmq.utils.monitor drags in zmq.asyncio at start-up.
        event, value = struct.unpack("=HI", monitor.recv_multipart()[0][:6])
        yield event, value


def queue_without_blocking(sock: zmq.Socket[Any], payload: bytes) -> bool:
    """Queue ``payload`` on a connecting socket, never blocking; True when it was queued.

    libzmq gives a connecting socket its pipe in connect(), so a send right after it
    normally queues at once. But a peer that refuses the handshake (a socket of a type ours
    cannot talk to) makes libzmq tear that pipe down and never reconnect; when a loaded
    machine runs us only after that, a blocking send waits for a pipe forever, past every
    deadline (seen: 3 waits in 60 against a REQ peer with both cores busy, hung in send).
    Not queued: the monitor's events say why."""
    try:
        sock.send(payload, zmq.DONTWAIT)
    except zmq.Again:
        return False
    return True


def close_monitored(sock: zmq.Socket[Any], monitor: zmq.Socket[Any]) -> None:
    """Close a socket and its monitor, monitor first, without lingering."""
    sock.disable_monitor()
    monitor.close(linger=0)
    sock.close(linger=0)
