"""Stand-in for AwesomeTrading/PyMetaTrader: its ZeroMQ broker and the MTServer EA worker.

Written from (protocol facts only, no code taken): AwesomeTrading/PyMetaTrader
``pymetatrader/broker.py``, ``expert/MTServer/Server.mqh`` and ``Account.mqh`` @
5a808da09d8240619052e310a19c8a77b5f75d49.

Reproduced, the broker:
  * ROUTER for clients bound on ``--client-port`` (22880, identity ``CBroker``), ROUTER for
    EA workers on ``--worker-port`` (22990, ``WBroker``), and the pub/sub pair: XPUB for
    clients on ``--pub-port`` (22881), XSUB for the EA on ``--xsub-port`` (22991), joined.
  * A worker's ``READY`` (or any reply) makes it idle, or hands it the oldest request still
    queued; a request that waited past its expiry is dropped unanswered (``expired``).
  * A client request ``[identity, "", text]`` goes, whole, to an idle worker (the one that
    became idle last); with none idle it is queued for ``--hold-s`` (30 s) and, if no
    worker comes, never answered (``queued``). A worker's reply ``[identity, "", text]`` is
    routed by that identity; an identity no client holds is dropped by the ROUTER.
Reproduced, the EA (a REQ connecting to the worker port; ``--ea-attached``):
  * On start ``READY``; then one non-blocking receive per 10 ms timer tick: the client's
    identity read as a string (an identity that is not printable ASCII comes back empty,
    as it does through an MQL string), the delimiter, the request.
  * The request split on ``;``, the first field compared exactly: ``PING`` -> ``OK|PONG``,
    ``ACCOUNT`` -> ``OK|id=<login>|name=...|company=...|server=...|type=demo|currency=...|
    deposit=...|margin=...|leverage=...|gmtoffset=...``, ``FUND`` ->
    ``OK|balance=...|equity=...``; ``OPEN_ORDER``, ``MODIFY_ORDER``, ``CANCEL_ORDER``,
    ``MODIFY_TRADE``, ``CLOSE_TRADE`` are ``order_attempt`` lines, ``SUB_*``/``UNSUB_*``
    ``subscription_change`` lines; anything else ``KO|<the terminal's error text>``.
  * ``--state-file`` lines ``ea_attached=0|1`` (the EA leaves or joins the broker),
    ``logged_in=0|1`` (id=0, empty strings, 0 money), re-read when the file changes.

Left out: the broker's PINGs to idle workers and worker expiry (100 s), its ``purge``,
the EA's re-READY after 60 s without a request, every other command's payload (BARS,
QUOTES, MARKETS, TIME, ORDERS, TRADES, DEALS answer ``KO|`` with ``not_reproduced``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict, deque

import zmq

from tests import standins as rt

ORDER_COMMANDS = ("OPEN_ORDER", "MODIFY_ORDER", "CANCEL_ORDER", "MODIFY_TRADE", "CLOSE_TRADE")
STATE_KEYS = ("ea_attached", "logged_in")
LOGIN, BALANCE = 51234567, 10000.0


def as_mql_text(identity: bytes) -> str:
    """An identity as the EA's string holds it: printable ASCII survives, else empty."""
    try:
        text = identity.decode("ascii")
    except UnicodeDecodeError:
        return ""
    return text if text.isprintable() and "\x00" not in text else ""


class Broker:
    """broker.py's request loop: idle workers, a queue of requests with an expiry."""

    def __init__(self, events: rt.Events, clients: rt.Socket, workers: rt.Socket, hold_s: float):
        self.events, self.clients, self.workers, self.hold_s = events, clients, workers, hold_s
        self.idle: OrderedDict[bytes, None] = OrderedDict()
        self.queued: deque[tuple[list[bytes], float]] = deque()

    def from_client(self) -> None:
        msg = self.clients.recv_multipart()
        self.events.emit(
            "request", identity=rt.shown(msg[0]), bytes=rt.shown(msg[-1]), frames=len(msg)
        )
        if self.idle:
            worker, _ = self.idle.popitem()
            self.workers.send_multipart([worker, b"", *msg])
            self.events.emit("routed", worker=rt.shown(worker))
        else:
            self.queued.append((msg, time.monotonic() + self.hold_s))
            self.events.emit("queued", identity=rt.shown(msg[0]), hold_s=self.hold_s)

    def from_worker(self) -> None:
        msg = self.workers.recv_multipart()
        worker = msg[0]
        if msg[2:3] == [b"READY"]:
            self.events.emit("worker_ready", worker=rt.shown(worker))
        else:
            self.clients.send_multipart(msg[2:])  # routed by the client identity it names
            self.events.emit("replied", identity=rt.shown(msg[2]), bytes=rt.shown(msg[-1]))
        while self.queued:
            request, expiry = self.queued.popleft()
            if expiry > time.monotonic():
                self.workers.send_multipart([worker, b"", *request])
                self.events.emit("routed", worker=rt.shown(worker))
                return
            self.events.emit("expired", identity=rt.shown(request[0]))
        self.idle[worker] = None


class Ea:
    """MTServer as a worker: a REQ to the broker, one receive per timer tick."""

    def __init__(self, args: argparse.Namespace, events: rt.Events, ctx: zmq.Context[rt.Socket]):
        self.events, self.ctx = events, ctx
        self.defaults = {"ea_attached": args.ea_attached, "logged_in": 1}
        self.state = dict(self.defaults)
        self.control = rt.WatchedFile(args.state_file)
        self.sock: rt.Socket | None = None

    def refresh(self) -> None:
        switches = rt.read_switches(self.control, self.defaults, STATE_KEYS, self.events)
        if switches is not None:
            self.state = switches

    def on_timer(self, worker_port: int) -> None:
        self.refresh()
        if self.state["ea_attached"] and self.sock is None:
            self.sock = self.ctx.socket(zmq.REQ)
            self.sock.setsockopt(zmq.LINGER, 0)
            self.sock.connect(f"tcp://127.0.0.1:{worker_port}")
            self.sock.send(b"READY")
            self.events.emit("ea_attached")
        elif not self.state["ea_attached"] and self.sock is not None:
            self.sock.close(linger=0)
            self.sock = None
            self.events.emit("ea_detached")
        if self.sock is None:
            return
        try:
            frames = self.sock.recv_multipart(zmq.DONTWAIT)
        except zmq.Again:
            return
        if frames == [b"PING"]:
            return
        address, request = as_mql_text(frames[0]), frames[-1]
        self.events.emit("ea_request", address=address, bytes=rt.shown(request))
        reply = self.answer(request.decode("utf-8", errors="replace"))
        self.sock.send_multipart([address.encode(), b"", reply.encode()])
        self.events.emit("sent", socket="worker", to=address, bytes=reply)

    def answer(self, message: str) -> str:
        command = message.split(";", maxsplit=1)[0]
        logged_in = bool(self.state["logged_in"])
        if command == "PING":
            return "OK|PONG"
        if command == "ACCOUNT":
            return (
                f"OK|id={LOGIN if logged_in else 0}"
                f"|name={'Stand-in | Trader' if logged_in else ''}"
                f"|company={'Stand-in Markets Ltd' if logged_in else ''}"
                f"|server={'StandIn-Demo' if logged_in else ''}"
                f"|type=demo|currency={'USD' if logged_in else ''}"
                f"|deposit={BALANCE if logged_in else 0:g}|margin=0|leverage=100|gmtoffset=0"
            )
        if command == "FUND":
            money = BALANCE if logged_in else 0
            return f"OK|balance={money:g}|equity={money:g}"
        if command in ORDER_COMMANDS:
            self.events.order_attempt(message.encode())
            return "KO|Autotrading disabled by client"
        if command.startswith(("SUB", "UNSUB")):
            self.events.emit("subscription_change", request=message)
            return "OK|"
        self.events.emit("not_reproduced", command=command)
        return "KO|Unknown command"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = rt.common_parser(
        "python -m tests.standins.pymetatrader_broker", "PyMetaTrader broker and EA stand-in"
    )
    parser.add_argument("--client-port", type=int, default=22880, help="ROUTER for clients")
    parser.add_argument("--worker-port", type=int, default=22990, help="ROUTER for EAs")
    parser.add_argument("--pub-port", type=int, default=22881, help="XPUB for clients")
    parser.add_argument("--xsub-port", type=int, default=22991, help="XSUB for EAs")
    parser.add_argument("--hold-s", type=float, default=30.0, help="how long a request waits")
    parser.add_argument("--ea-attached", type=int, choices=(0, 1), default=1)
    parser.add_argument(
        "--state-file", default=None, metavar="PATH", help="lines ea_attached=, logged_in="
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    events, stopper = rt.Events(), rt.Stopper(args.exit_after)
    if not rt.begin(events, stopper, args.start_delay):
        return 0
    ctx = zmq.Context()
    try:
        clients, workers = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
        clients.setsockopt(zmq.IDENTITY, b"CBroker")
        workers.setsockopt(zmq.IDENTITY, b"WBroker")
        xpub, xsub = ctx.socket(zmq.XPUB), ctx.socket(zmq.XSUB)
        for sock in (clients, workers, xpub, xsub):
            sock.setsockopt(zmq.LINGER, 0)
        ports = rt.bind_all(
            events,
            args.bind,
            [
                ("client", clients, args.client_port),
                ("worker", workers, args.worker_port),
                ("pub", xpub, args.pub_port),
                ("xsub", xsub, args.xsub_port),
            ],
        )
        if ports is None:
            return 1
        events.emit("listening", ports=ports)
        broker, ea = Broker(events, clients, workers, args.hold_s), Ea(args, events, ctx)
        poller = zmq.Poller()
        for sock in (clients, workers, xpub, xsub):
            poller.register(sock, zmq.POLLIN)
        # One thread: the broker's loop, and the EA's 10 ms timer between its polls.
        next_tick = time.monotonic()
        while not stopper.stopped:
            ready = dict(poller.poll(10))
            if clients in ready:
                broker.from_client()
            if workers in ready:
                broker.from_worker()
            if xpub in ready:
                xsub.send_multipart(xpub.recv_multipart())
            if xsub in ready:
                xpub.send_multipart(xsub.recv_multipart())
            if time.monotonic() >= next_tick:
                ea.on_timer(ports["worker"])
                next_tick = time.monotonic() + 0.01
        if ea.sock is not None:
            ea.sock.close(linger=0)
    finally:
        ctx.destroy(linger=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
