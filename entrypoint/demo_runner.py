"""A tiny strategy runner for the demo and the image's default CMD.

It proves the hand-off: prints ``ready pid=N`` (the gate's PID, since it was exec'd), then
subscribes to the gateway's PUB feed and prints ticks. Configuration comes from the same
variables as the gate: GATEWAY_HOST and GATEWAY_PUB_PORT (default 5556).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

import zmq


class _Stop(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo_runner", description=__doc__)
    parser.add_argument("--ticks", type=int, default=0, help="stop after N ticks (0 = never)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="give up (exit 1) when no message arrives for this many seconds")
    args = parser.parse_args(argv)
    host = os.environ.get("GATEWAY_HOST", "127.0.0.1")
    port = os.environ.get("GATEWAY_PUB_PORT", "5556")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    print(f"ready pid={os.getpid()} subscribing to {host}:{port}", flush=True)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.MAXMSGSIZE, 64 * 1024)
    if ":" in host:
        sub.setsockopt(zmq.IPV6, 1)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        sub.connect(f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}")
        return _print_ticks(sub, args.ticks, args.timeout)
    except _Stop as stop:
        print(f"stopping on {signal.Signals(stop.signum).name}", flush=True)
        return 128 + stop.signum
    finally:
        sub.close(linger=0)
        ctx.term()


def _print_ticks(sub: zmq.Socket[bytes], limit: int, timeout_s: float) -> int:
    seen = 0
    while limit == 0 or seen < limit:
        if not sub.poll(int(timeout_s * 1000)):
            print(f"no message for {timeout_s:g} s; giving up", file=sys.stderr, flush=True)
            return 1
        try:
            message = json.loads(sub.recv())
        except ValueError:
            continue
        if not isinstance(message, dict) or message.get("type") != "tick":
            continue
        seen += 1
        print(f"tick {seen}: {message.get('symbol')} bid={message.get('bid')} "
              f"ask={message.get('ask')}", flush=True)
    print(f"received {seen} ticks; done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
