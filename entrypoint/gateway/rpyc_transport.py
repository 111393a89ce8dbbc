"""The ``rpyc`` transport: the ``MetaTrader5`` module behind an rpyc classic server
(lucas-campagna/mt5linux), read through calls from a read-only allow-list (``mt5linux``).

Imported only when this transport is used (``transport_for``): it imports rpyc, the
optional extra ``mt5-gate[rpyc]``.

rpyc's own limits do not bound an exchange (tomerfiliba-org/rpyc 6.0.2, read and run: see
docs/BRIDGES.md): ``rpyc.connect`` retries a connect six times, a peer that speaks first
(an SSH banner, a ZeroMQ greeting) is read as a frame header of gigabytes and blocks the
client for ever, and 6.x's ``close`` waits a whole ``sync_request_timeout`` on a hung
server. So the gate opens the TCP connection itself within its budget, checks the peer
stays silent for a moment (an rpyc server never speaks first), wraps the socket with
``connect_stream`` and a client service that exposes nothing (``VoidService``: never
``rpyc.classic.connect``, which would let the peer run code in the gate), and a watchdog
shuts the socket down when the attempt's budget runs out (``_Watchdog``).
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import rpyc
from rpyc.utils.factory import connect_stream

from entrypoint.addresses import address_text, socket_family
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.gateway import mt5linux
from entrypoint.gateway.endpoint import RPYC, Endpoint
from entrypoint.gateway.tcp import classify_os_error
from entrypoint.gateway.transports import Caught, OnSent, Transport, no_callback
from entrypoint.gateway.zmq_client import Exchange, ZmqGateway
from entrypoint.log.logs import untrusted
from entrypoint.process.signals import raise_if_pending
from entrypoint.reasons import Reason

# How long the peer must stay silent after the connection: an rpyc server never speaks
# first, so any byte in this window means another protocol owns the port (a banner that
# comes later still fails the frame-header check of ``_CheckedStream``). Short: it is
# paid on every attempt, and in the detection of a late start.
SILENCE_S = 0.02
# An rpyc frame header is a 4-byte length and a 1-byte "compressed" flag (0 or 1): a
# greeting read as one (SSH-, HTTP/, a ZMTP signature) has another flag or a huge length.
_MAX_FRAME = 64 * 1024 * 1024
# During a backoff pause the port is tried this often (rpyc has no reconnecting socket):
# a server that starts late is noticed within about this much.
WATCH_EVERY_S = 0.1
# The gate's one initialize(): MetaQuotes' default timeout is 60 s; the call is left this
# long before the gate stops tracking it (the server's thread goes on regardless).
INITIALIZE_LIMIT_S = 75.0
# Of what an attempt has left, the share it waits for an initialize() it just started.
INITIALIZE_WAIT_SHARE = 0.5
_CLIENT_CONFIG = {
    # rpyc's client defaults, spelled out: the peer's objects are never unpickled, their
    # attributes never served, its exceptions never instantiated as its own classes.
    "allow_pickle": False,
    "allow_public_attrs": False,
    "allow_all_attrs": False,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": False,
}
_BANNERS = ((b"SSH-", "an SSH server"), (b"\xff", "a ZeroMQ peer"), (b"HTTP", "an HTTP server"))


class Initialize:
    """The gate's one ``initialize()`` call: started on its own connection, tracked until it
    returns (it blocks ~60 s while a terminal starts and cannot be cancelled), never two at
    once. ``outcome`` is what the document shows."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._done.set()
        self._lock = threading.Lock()
        self.result: bool | None = None  # the last call's answer (None: it failed)

    @property
    def in_flight(self) -> bool:
        return not self._done.is_set()

    def start(self, address: str, port: int, connect_s: float) -> bool:
        """Start the call unless one is in flight; True when this started one."""
        with self._lock:
            if self.in_flight:
                return False
            self._done.clear()
        threading.Thread(
            target=self._call,
            args=(address, port, connect_s),
            name="mt5-gate-initialize",
            daemon=True,  # the exec (or the process's end) takes it: the server goes on
        ).start()
        return True

    def wait(self, seconds: float) -> bool:
        return self._done.wait(max(0.0, seconds))

    def outcome(self) -> Any:
        return mt5linux.INITIALIZE_IN_FLIGHT if self.in_flight else self.result

    def _call(self, address: str, port: int, connect_s: float) -> None:
        result: bool | None = None
        try:
            budget = Deadline(INITIALIZE_LIMIT_S)
            with _Session(address, port, budget, connect_s) as session:
                # No silence check: the attempt that started this call already saw an
                # rpyc server here (and the frame-header check still applies).
                mt5 = session.metatrader5()
                answer = mt5.initialize()  # no arguments: attach, never log in or launch
                result = answer if type(answer) is bool else None
        except Exception:  # noqa: BLE001 - AttemptFailed included: the next attempt says why
            result = None
        finally:
            self.result = result
            self._done.set()


class _CheckedStream(rpyc.SocketStream):  # type: ignore[misc]
    """rpyc's socket stream, refusing a frame header no rpyc peer sends: otherwise a
    greeting that arrives after the silence check is read as a length of gigabytes and
    the read waits for them (bounded only by the watchdog)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._header_next = True  # rpyc reads a 5-byte header, then its payload

    def read(self, count: int) -> bytes:
        data: bytes = super().read(count)
        if self._header_next and len(data) == 5:
            length, flag = int.from_bytes(data[:4], "big"), data[4]
            if flag > 1 or length > _MAX_FRAME:
                raise ValueError(f"not an rpyc frame header: {untrusted(data)}")
        self._header_next = not self._header_next
        return data


class _Watchdog:
    """Shuts the socket down when the budget runs out: a read blocked inside rpyc then
    ends at once with end-of-file (the idea of ``targets.cutoff``, for one socket this
    module owns; that module sits above the gateway layer). Cancelled before the socket
    is closed, so it never touches a descriptor number reused meanwhile."""

    def __init__(self, sock: socket.socket, budget: Deadline) -> None:
        self._sock = sock
        self._lock = threading.Lock()
        self._live = True
        self.fired = False
        left = budget.wait_s()
        self._timer = threading.Timer(left, self._fire) if math.isfinite(left) else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._live:
                self.fired = True
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        with self._lock:
            self._live = False
        if self._timer is not None:
            self._timer.cancel()


class _Session:
    """One TCP connection to the server, the rpyc connection on it, and its cut-off."""

    def __init__(self, address: str, port: int, budget: Deadline, connect_s: float) -> None:
        self.address = address
        self.where = address_text(address, port)
        self.budget = budget
        self.connect_ms: float | None = None
        self.sock = self._open(address, port, budget.capped(connect_s))
        self.conn: Any = None
        self.watchdog = _Watchdog(self.sock, budget)

    def __enter__(self) -> _Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.watchdog.cancel()
        with contextlib.suppress(OSError):  # first: 6.x's close() would wait for an answer
            self.sock.shutdown(socket.SHUT_RDWR)
        if self.conn is not None:
            with contextlib.suppress(Exception):  # the socket is gone either way
                self.conn.close()
        self.sock.close()

    def _open(self, address: str, port: int, deadline: Deadline) -> socket.socket:
        sock = socket.socket(socket_family(address), socket.SOCK_STREAM)
        started = time.monotonic()
        try:
            sock.settimeout(deadline.wait_s())
            sock.connect((address, port))
        except OSError as exc:
            sock.close()
            reason = classify_os_error(exc)
            said = f"no answer within {deadline.limit_s:g} s" if reason is Reason.TIMEOUT else exc
            raise AttemptFailed("tcp", reason, f"{self.where}: {said}") from None
        self.connect_ms = round((time.monotonic() - started) * 1000, 2)
        return sock

    def check_silence(self) -> None:
        """An rpyc server never speaks first: bytes now are another protocol's."""
        self.sock.settimeout(min(SILENCE_S, self.budget.wait_s()))
        try:
            first = self.sock.recv(64)
        except TimeoutError:
            return
        except OSError as exc:
            self.raise_if_cut()
            raise AttemptFailed("rpyc", classify_os_error(exc), f"{self.where}: {exc}") from None
        if not first:
            self.raise_if_cut()  # our watchdog ended it, not the peer
            raise AttemptFailed(
                "rpyc", Reason.RESET, f"{self.where} accepted the connection and closed it"
            )
        who = next((name for prefix, name in _BANNERS if first.startswith(prefix)), "a server")
        raise AttemptFailed(
            "rpyc",
            Reason.PROTOCOL,
            f"{self.where} is not an rpyc server: it spoke first, like {who} "
            f"({untrusted(first[:32])}); an rpyc server never does: check the port "
            "(mt5linux listens on 18812, gmag11's image on 8001)",
        )

    def raise_if_cut(self) -> None:
        """The budget ran out (the watchdog shut the socket down): whatever the read
        made of it, the attempt got no reply in time."""
        if self.watchdog.fired:
            raise AttemptFailed(
                "reply",
                Reason.NO_REPLY,
                f"no reply from {self.where} within {self.budget.limit_s:g} s",
            )

    def metatrader5(self) -> Any:
        """The server's ``MetaTrader5`` module (a netref), through the classic server's
        ``getmodule``: nothing of the gate is exposed to the server."""
        self.sock.settimeout(None)  # blocking: the cut-off bounds the whole exchange
        config = dict(_CLIENT_CONFIG, sync_request_timeout=max(0.001, self.budget.remaining()))
        self.conn = connect_stream(_CheckedStream(self.sock), rpyc.VoidService, config)
        return self.conn.root.getmodule("MetaTrader5")

    def getter(self, fields: tuple[str, ...]) -> Callable[[Any], Any]:
        """``operator.attrgetter(*fields)`` on the server: one round trip returns a record's
        fields as a plain tuple, sent by value."""
        return self.conn.root.getmodule("operator").attrgetter(*fields)  # type: ignore[no-any-return]


class RpycTransport(Transport):
    name = RPYC

    def __init__(self, gateway: ZmqGateway, endpoint: Endpoint) -> None:
        super().__init__(gateway, endpoint)
        self.initialize = Initialize()

    def exchange(
        self,
        address: str,
        payload: bytes,
        deadline: Deadline,
        *,
        reply_timeout_s: float,
        on_sent: OnSent = no_callback,
        secret: bool = False,
        via: str = "attempt",
    ) -> Exchange:
        timeouts = self.endpoint.timeouts._replace(reply_s=reply_timeout_s)
        budget = deadline.capped(timeouts.exchange_s)
        with _Session(address, self.endpoint.port, budget, self.endpoint.connect_timeout_s) as s:
            return self._read(s, mt5linux.parse_calls(payload.decode()), on_sent)

    def watch(
        self,
        address: str,
        payload: bytes,
        pause: Deadline,
        *,
        on_sent: OnSent = no_callback,
        secret: bool = False,
        until: Deadline | None = None,
    ) -> Caught | None:
        """Try the port every ``WATCH_EVERY_S`` through the pause; once it accepts, one
        exchange on that connection (bounded by ``until`` too). Any failure: None, and
        the next attempt says why."""
        port, e = self.endpoint.port, self.endpoint
        while not pause.expired():
            raise_if_pending()
            tick = Deadline(WATCH_EVERY_S)
            limit = until if until is not None else Deadline(0)
            budget = limit.capped(e.timeouts.exchange_s)
            try:
                with _Session(address, port, budget, min(e.connect_timeout_s, WATCH_EVERY_S)) as s:
                    exchange = self._read(s, mt5linux.parse_calls(payload.decode()), on_sent)
            except AttemptFailed as failure:
                if failure.stage != "tcp":
                    return None
                time.sleep(min(tick.remaining(), pause.remaining()))
                continue
            return exchange.frames, exchange.rtt_ms
        return None

    def passive(self, address: str, deadline: Deadline) -> float:
        raise NotImplementedError("rpyc health is active: see TransportKind.passive_health")

    def _read(self, session: _Session, calls: tuple[str, ...], on_sent: OnSent) -> Exchange:
        session.check_silence()
        on_sent()
        started = time.monotonic()
        try:
            document = self._document(session, calls)
        except AttemptFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - rpyc's and the server's: judged below
            session.raise_if_cut()
            raise _failure(session.where, exc) from None
        rtt_ms = round((time.monotonic() - started) * 1000, 2)
        frame = json.dumps(document, separators=(",", ":")).encode()
        return Exchange([frame], session.connect_ms, rtt_ms)

    def _document(self, session: _Session, calls: tuple[str, ...]) -> dict[str, Any]:
        mt5 = session.metatrader5()
        doc = mt5linux.empty_document()
        if "terminal_info" in calls:
            terminal = self._terminal(session, mt5)
            doc["terminal_info"] = terminal
            if terminal is None:
                doc["initialize"] = self._attach(session, mt5)
                if self.initialize.result is True and not self.initialize.in_flight:
                    doc["terminal_info"] = self._terminal(session, mt5)
        if "account_info" in calls:
            account = mt5.account_info()
            if account is not None:
                values = session.getter(mt5linux.ACCOUNT_FIELDS)(account)
                doc["account_info"] = mt5linux.record(mt5linux.ACCOUNT_FIELDS, values)
        for call in ("last_error", "version"):
            if call in calls:
                doc[call] = mt5linux.plain(getattr(mt5, call)())
        return doc

    @staticmethod
    def _terminal(session: _Session, mt5: Any) -> dict[str, Any] | None:
        terminal = mt5.terminal_info()
        if terminal is None:
            return None
        values = session.getter(mt5linux.TERMINAL_FIELDS)(terminal)
        return mt5linux.record(mt5linux.TERMINAL_FIELDS, values)

    def _attach(self, session: _Session, _mt5: Any) -> Any:
        """``terminal_info()`` is None: the module is attached to no terminal. Start the
        gate's one ``initialize()`` (unless one runs), and give a call it started part of
        what this attempt has left; its outcome goes into the document."""
        if self.initialize.start(
            session.address, self.endpoint.port, self.endpoint.connect_timeout_s
        ):
            # A running terminal attaches in well under a second: worth waiting for here.
            # One already in flight is not waited for again: the attempt says so at once.
            self.initialize.wait(session.budget.remaining() * INITIALIZE_WAIT_SHARE)
        return self.initialize.outcome()


def _failure(where: str, exc: Exception) -> AttemptFailed:
    """What an exception from rpyc (or from the server, re-raised by rpyc) says: the first
    row that matches it."""
    said = untrusted((str(exc).strip().splitlines() or [type(exc).__name__])[0], 160)
    for matches, stage, reason, text in _FAILURES:
        if matches(exc):
            return AttemptFailed(stage, reason, text.format(where=where, said=said))
    return AttemptFailed("reply", Reason.BAD_REPLY, f"{where}: the call failed: {said}")


_FAILURES: tuple[tuple[Callable[[Exception], bool], str, Reason, str], ...] = (
    (
        # rpyc 6 reads a 5.x frame's first byte (brine's TUP3, 0x12 = 18) as its type.
        lambda exc: isinstance(exc, ValueError) and "invalid message type" in str(exc),
        "rpyc",
        Reason.PROTOCOL,
        "rpyc version mismatch: {where} speaks rpyc 5.x or older, this gate rpyc "
        f"{rpyc.__version__}, and the two cannot talk to each other: upgrade the server's "
        "rpyc (mt5linux >= 1.0.3 pins rpyc >= 6), or build the gate's image with rpyc < 6",
    ),
    (
        lambda exc: isinstance(exc, ImportError),
        "rpyc",
        Reason.PROTOCOL,
        "{where} is an rpyc classic server without the MetaTrader5 package ({said}): it is "
        "not the terminal's Windows Python under Wine",
    ),
    (
        lambda exc: isinstance(exc, AttributeError) and "getmodule" in str(exc),
        "rpyc",
        Reason.PROTOCOL,
        "{where} is an rpyc server but not a classic one (no getmodule): not mt5linux",
    ),
    (
        lambda exc: isinstance(exc, TimeoutError),
        "reply",
        Reason.NO_REPLY,
        "{where} did not answer in time",
    ),
    (
        lambda exc: isinstance(exc, EOFError | ConnectionError),
        "rpyc",
        Reason.RESET,
        "{where} closed the connection ({said})",
    ),
    (
        lambda exc: isinstance(exc, ValueError | TypeError | KeyError | IndexError),
        "rpyc",
        Reason.PROTOCOL,
        "{where} sent what rpyc cannot decode ({said}): not an rpyc server",
    ),
)
