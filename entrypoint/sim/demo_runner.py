"""A tiny strategy runner for the demo and the image's default CMD.

It proves the hand-off: prints ``ready pid=N`` (the gate's PID, since it was exec'd), then
subscribes to the gateway's PUB feed and prints ticks. Configuration comes from the same
variables as the gate: GATEWAY_HOST and GATEWAY_PUB_PORT (default 5556).

Ctrl-C (SIGINT) or SIGTERM ends it with one line, ``demo runner: stopped by ...``, and exit
128+N (130, 143), never a traceback. Its handlers go in before anything heavy is imported
(pyzmq alone is ~20 ms): a Ctrl-C right after the gate's exec used to land in those imports
as a 25-line KeyboardInterrupt traceback. What is left is the interpreter's own start-up
before this module runs (~15 ms in an editable install, its .pth finder included), where a
signal is still Python's or the system's default.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

TYPE_CHECKING = False  # typing is not imported for this alone: it is ~5 ms of start-up
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import FrameType

    import zmq

HANDLED = (signal.SIGINT, signal.SIGTERM)

# The signals received, first one first; `armed` while the work below can be unwound (a
# _Stop raised there is caught by main), not before main's try nor after it.
_received: list[int] = []
_state = {"armed": False}
_LEFT_TO_EXIT: list[object] = []


class _Stop(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def stopped_line(signum: int) -> str:
    """The one line printed when a signal stops the runner."""
    name = signal.Signals(signum).name
    return f"demo runner: stopped by {'Ctrl-C (SIGINT)' if name == 'SIGINT' else name}"


def _stop(signum: int, _frame: FrameType | None) -> None:
    # The line goes out here, at once and once: whatever happens while unwinding (a second
    # signal, the exception swallowed by a __del__), the runner has said why it stops.
    _received.append(signum)
    for sig in HANDLED:
        signal.signal(sig, _exit_now)
    _say(stopped_line(signum))
    if not _state["armed"]:  # outside main's try: a raise here would be a traceback
        os._exit(128 + signum)
    raise _Stop(signum)


def _exit_now(signum: int, _frame: FrameType | None) -> None:
    # A second signal while the first unwinds (a Ctrl-C then a SIGTERM from a supervisor):
    # stop at once, with the first signal's code and no new line.
    os._exit(128 + (_received[0] if _received else signum))


def _say(line: str) -> None:
    # os.write, not print: a handler may run in the middle of a print to the same stream.
    with contextlib.suppress(OSError):  # no stdout at all: the exit code still says it
        os.write(1, f"{line}\n".encode())


def install_stop_handlers() -> None:
    _received.clear()
    for sig in HANDLED:
        signal.signal(sig, _stop)


def main(argv: Sequence[str] | None = None) -> int:
    install_stop_handlers()
    try:
        _state["armed"] = True
        code = _run(argv)
        _state["armed"] = False
    except _Stop as stop:
        _state["armed"] = False
        # Only the interpreter's exit is left, and it cannot stall (the ZeroMQ context is
        # left to the OS), but it puts back the default action of a signal that has a
        # handler: a second one arriving then would end the process by that signal.
        for sig in HANDLED:
            signal.signal(sig, signal.SIG_IGN)
        code = 128 + stop.signum
    return code


def _run(argv: Sequence[str] | None) -> int:
    import argparse  # noqa: PLC0415 - after the handlers: see the module docstring

    import zmq  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="demo_runner",
        description="\n\n".join((__doc__ or "").split("\n\n")[:2]),
        epilog="Ctrl-C (SIGINT) or SIGTERM: one line saying so, then exit 130 or 143.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--ticks", type=int, default=0, help="stop after N ticks (0 = never)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="give up (exit 1) when no message arrives for this many seconds",
    )
    args = parser.parse_args(argv)
    host = os.environ.get("GATEWAY_HOST", "127.0.0.1")
    port = os.environ.get("GATEWAY_PUB_PORT", "5556")
    print(f"ready pid={os.getpid()} subscribing to {host}:{port}", flush=True)
    ctx = zmq.Context()
    # Referenced until the process exits, and destroyed only on the way out of a normal
    # end: a signal may interrupt pyzmq half-way through creating the socket, leaving one
    # it does not track, and term() would then wait for it forever. On a signal the OS
    # closes it all at exit (pyzmq does not terminate a context once atexit has run).
    _LEFT_TO_EXIT.append(ctx)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.MAXMSGSIZE, 64 * 1024)
    if ":" in host:
        sub.setsockopt(zmq.IPV6, 1)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}")
    code = _print_ticks(sub, args.ticks, args.timeout)
    ctx.destroy(linger=0)
    return code


def _print_ticks(sub: zmq.Socket[bytes], limit: int, timeout_s: float) -> int:
    import json  # noqa: PLC0415

    seen = 0
    while limit == 0 or seen < limit:
        if _received:  # a _Stop swallowed by a __del__ (Python reports it and carries on)
            raise _Stop(_received[0])
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
        print(
            f"tick {seen}: {message.get('symbol')} bid={message.get('bid')} "
            f"ask={message.get('ask')}",
            flush=True,
        )
    print(f"received {seen} ticks; done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
