"""The simulated MT5 ZeroMQ bridge that ``mt5-gate sim`` runs (its flags: commands/sim.py).

REQ/REP on ``--port`` answers in the dialect ``--dialect`` names (dialects.py: today's
PING/STATUS, and the other bridges users run); PUB on ``--pub-port`` publishes JSON ticks
and a heartbeat. Fault knobs reproduce what goes wrong in production: a late start, slow
or missing replies, garbage, a bad status, and a non-ZeroMQ listener.
The REP side is a ROUTER socket so a request can be left unanswered or answered late
without blocking the others. The bridges that answer on a second socket (``dwx``,
``mql5-json-api``: a PUSH on ``--reply-port``) are served by bridges.py.

"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
import os
import random
import socket
import time
from typing import Any

import zmq

from entrypoint.errors import CannotBind, UsageError
from entrypoint.files import read_regular_file
from entrypoint.log import events
from entrypoint.log.events import emit
from entrypoint.log.logs import configure_logging, get_logger, untrusted
from entrypoint.settings.curve import check_key, read_key
from entrypoint.sim.bridges import check_options, serve_bridge
from entrypoint.sim.dialects import (
    DEFAULT_TICK_HZ,
    DIALECTS,
    RPYC_DIALECTS,
    TICK_SYMBOLS,
    SimState,
    now_iso,
)

HEARTBEAT_INTERVAL_S = 1.0
_MAX_LIST_BYTES = 1024 * 1024  # --curve-allow: a key per line, 41 bytes each
NOT_ZMQ_BANNER = (
    b"HTTP/1.1 400 Bad Request\r\nServer: not-a-zmq-gateway\r\nContent-Length: 0\r\n\r\n"
)


def serve(args: argparse.Namespace) -> int:
    """Check the options, then serve as ``args`` says until ``--exit-after``; exit code 0."""
    check_options(args)
    configure_logging(args.log_format, "info")
    log = get_logger().bind(component="sim")
    curve = _curve_setup(args)
    token = _token(args)
    started = time.monotonic()
    stop_at = math.inf if args.exit_after is None else started + args.exit_after
    if args.start_delay:
        emit(log, events.SIM_STARTING, start_delay_s=args.start_delay)
        time.sleep(min(args.start_delay, max(0.0, stop_at - time.monotonic())))
    if time.monotonic() >= stop_at:
        emit(log, events.SIM_STOPPED, reason="exit_after")
        return 0
    if args.dialect in RPYC_DIALECTS:
        from entrypoint.sim.mt5linux import serve_mt5linux  # noqa: PLC0415 - imports rpyc

        serve_mt5linux(args, log, SimState(started, log, broker_state=args.broker_state), stop_at)
    elif args.not_zmq:
        _serve_not_zmq(args, log, stop_at)
    else:
        state = SimState(started, log, token, args.bad_status, broker_state=args.broker_state)
        _SimGateway(args, log, state, curve).serve(stop_at)
    emit(log, events.SIM_STOPPED, reason="exit_after")
    return 0


def _curve_setup(args: argparse.Namespace) -> tuple[bytes, frozenset[bytes] | None] | None:
    """(server secret key, allowed client keys or None for any) when CURVE is asked for."""

    if args.curve_secret_key_file is None:
        if args.curve_allow:
            raise UsageError("--curve-allow needs --curve-secret-key-file")
        return None
    secret = read_key(args.curve_secret_key_file, "secret", "--curve-secret-key-file")
    if args.curve_allow is None:
        return secret, None
    try:
        text = read_regular_file(args.curve_allow, _MAX_LIST_BYTES)[:_MAX_LIST_BYTES]
        lines = [
            line.strip()
            for line in text.decode("ascii").splitlines()
            if line.strip() and not line.startswith("#")
        ]
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--curve-allow: cannot read {args.curve_allow}: {exc}") from None
    allowed = frozenset(
        check_key(line, "--curve-allow", f"line {i}") for i, line in enumerate(lines, start=1)
    )
    return secret, allowed


def _token(args: argparse.Namespace) -> str | None:
    """The shared token of ``--dialect token``, read from ``--token-file``."""

    if args.dialect != "token":
        if args.token_file is not None:
            raise UsageError("--token-file goes with --dialect token")
        return None
    if args.token_file is None:
        raise UsageError("--dialect token needs --token-file PATH")
    try:
        token = read_regular_file(args.token_file, 65536)[:65536].decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--token-file: cannot read {args.token_file}: {exc}") from None
    if not token:
        raise UsageError(f"--token-file: {args.token_file} is empty")
    return token


def _serve_not_zmq(args: argparse.Namespace, log: Any, stop_at: float) -> None:
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((args.bind, args.port))
            server.listen(64)
        except OSError as exc:
            raise CannotBind(_cannot_bind(f"{args.bind} port {args.port}", exc)) from None
        emit(
            log,
            events.SIM_LISTENING,
            mode="not_zmq",
            port=server.getsockname()[1],
            reply_port=None,
            pub_port=None,
        )
        while time.monotonic() < stop_at:
            server.settimeout(min(1.0, max(0.01, stop_at - time.monotonic())))
            try:
                conn, _peer = server.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):  # a client that left early is fine
                conn.sendall(NOT_ZMQ_BANNER)


class _SimGateway:
    def __init__(
        self,
        args: argparse.Namespace,
        log: Any,
        state: SimState,
        curve: tuple[bytes, frozenset[bytes] | None] | None,
    ) -> None:
        self.args = args
        self.curve = curve
        self.log = log
        self.state = state

        self.dialect = DIALECTS.get(args.dialect)  # None: a bridge bridges.py serves
        self.requests = 0

        self.rng = random.Random()
        self.prices = dict(TICK_SYMBOLS)

    def answer(self, request: bytes) -> bytes:
        if self.args.garbage:
            return b"\xff\xfe<html>not json</html>"
        assert self.dialect is not None
        return self.dialect(request, self.state)

    def tick(self) -> bytes:
        symbol = self.rng.choice(sorted(self.prices))
        mid = self.prices[symbol] * (1 + self.rng.gauss(0, 0.00005))
        self.prices[symbol] = mid
        spread = mid * 0.00002
        return json.dumps(
            {
                "type": "tick",
                "symbol": symbol,
                "bid": round(mid - spread, 5),
                "ask": round(mid + spread, 5),
                "time": _now_iso(),
            }
        ).encode()

    def serve(self, stop_at: float) -> None:

        ctx = zmq.Context(io_threads=1)
        ctx.setsockopt(zmq.LINGER, 0)
        authenticator = None
        try:
            if self.curve is not None and self.curve[1] is not None:
                authenticator = _allow_list(ctx, self.curve[1], self.log)

            def bind(kind: int, port: int) -> Any:
                """A socket of ``kind`` bound on ``port``, with CURVE when asked for."""
                sock = ctx.socket(kind)
                sock.setsockopt(zmq.IPV6, 1 if ":" in self.args.bind else 0)
                if self.curve is not None:
                    sock.curve_server = True
                    sock.curve_secretkey = self.curve[0]
                    sock.curve_publickey = zmq.curve_public(self.curve[0])
                host = f"[{self.args.bind}]" if ":" in self.args.bind else self.args.bind
                try:
                    sock.bind(f"tcp://{host}:{port}")
                except zmq.ZMQError as exc:
                    sock.close(linger=0)
                    raise CannotBind(_cannot_bind(f"tcp://{host}:{port}", exc)) from None
                return sock

            if self.dialect is None:  # a bridge with a second socket
                serve_bridge(self.args, self.log, self.state, bind, stop_at)
                return
            rep = bind(zmq.ROUTER, self.args.port)
            pub = bind(zmq.PUB, self.args.pub_port)
            emit(
                self.log,
                events.SIM_LISTENING,
                mode="zmq",
                port=_bound_port(rep),
                reply_port=None,
                pub_port=_bound_port(pub),
                curve=self.curve is not None,
                dialect=self.args.dialect,
            )
            self._loop(zmq, rep, pub, stop_at)
        finally:
            if authenticator is not None:
                authenticator.stop()
            ctx.destroy(linger=0)

    def _loop(self, zmq: Any, rep: Any, pub: Any, stop_at: float) -> None:

        hz = DEFAULT_TICK_HZ if self.args.tick_hz is None else self.args.tick_hz
        tick_every = 1.0 / hz if hz > 0 else math.inf
        next_tick = time.monotonic()
        next_heartbeat = time.monotonic()
        delayed: list[tuple[float, int, list[bytes]]] = []
        while True:
            now = time.monotonic()
            if now >= stop_at:
                return
            while delayed and delayed[0][0] <= now:
                rep.send_multipart(heapq.heappop(delayed)[2])
            if now >= next_tick:
                pub.send(self.tick())
                next_tick = max(next_tick + tick_every, now)
            if now >= next_heartbeat:
                pub.send(json.dumps({"type": "heartbeat", "time": _now_iso()}).encode())
                next_heartbeat += HEARTBEAT_INTERVAL_S
            wake = min(stop_at, next_tick, next_heartbeat, delayed[0][0] if delayed else math.inf)
            if not rep.poll(max(0, int((wake - time.monotonic()) * 1000)) + 1, zmq.POLLIN):
                continue
            frames = rep.recv_multipart()
            self.requests += 1
            envelope, request = frames[:-1], frames[-1]
            emit(self.log, events.SIM_REQUEST, n=self.requests, request=untrusted(request, 120))
            if self.requests <= self.args.drop_first:
                continue  # taken, never answered: the client's socket is now stuck
            reply = [*envelope, self.answer(request)]
            due = time.monotonic() + self.args.reply_delay
            heapq.heappush(delayed, (due, self.requests, reply))


def _cannot_bind(where: str, exc: OSError | zmq.ZMQError) -> str:
    """One line: where, and the system's reason (a busy port, an address not on this host)."""
    # pyzmq's strerror repeats the address; the system's text for the errno says it once.
    reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
    if isinstance(exc, socket.gaierror):  # a name that does not resolve: errno is EAI_*
        reason = exc.strerror or reason
    return f"mt5-gate sim: cannot bind {where}: {reason}"


def _now_iso() -> str:

    return now_iso()


def _bound_port(sock: Any) -> int:
    return int(sock.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])


def _allow_list(ctx: Any, allowed: frozenset[bytes], log: Any) -> Any:
    """A ZAP handler accepting only the listed client keys (pyzmq's ThreadAuthenticator)."""
    from zmq.auth.thread import ThreadAuthenticator  # noqa: PLC0415

    class AllowList:
        def callback(self, _domain: str, key: bytes) -> bool:
            accepted = key in allowed
            emit(log, events.SIM_CLIENT_KEY, key=key.decode()[:8] + "...", accepted=accepted)
            return accepted

    authenticator = ThreadAuthenticator(ctx)
    authenticator.start()
    authenticator.configure_curve_callback("*", credentials_provider=AllowList())
    return authenticator
