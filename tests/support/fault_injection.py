"""Run the real gate with one failure injected where nobody expects one.

``python -c RUN KIND wait ...`` patches the place named KIND to raise, then runs the gate's
real entry point (``entrypoint.__main__.run``) in the same process, so everything else is
the product as shipped. Patching is the only way to make these places fail on demand: each
is code that has no failure mode a real input can trigger (that is the point of the test).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub
import _socket
import threading
from typing import Any, NoReturn

RUN = (
    "import sys; from tests.support.fault_injection import install; install(sys.argv.pop(1)); "
    "from entrypoint.__main__ import run; sys.exit(run())"
)


def _boom(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise RuntimeError("injected failure")


class _RaisesOnDelete:
    def __del__(self) -> None:
        raise RuntimeError("injected failure in __del__")


class _SignalsInDelete:
    """Its __del__ is where the stop handler runs: Python then swallows the GateSignal
    ("Exception ignored in ..."), as it does when pyzmq closes a socket in a finalizer."""

    def __del__(self) -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # bytecodes for the handler to run in, inside __del__
            pass


def _raising_methods() -> dict[str, tuple[Any, str]]:
    """The places where raising is all the injection does: kind -> (owner, attribute)."""
    from entrypoint import retry
    from entrypoint.commands import wait
    from entrypoint.gateway import check, zmq_client

    return {
        "also-probe": (wait._TargetCheck, "attempt"),  # the --also check's thread
        "attempt-hook": (retry.AttemptLog, "__call__"),  # fed each failed attempt
        "pause": (retry._Wait, "pause"),  # tenacity's sleep callback
        "next-pause": (retry._Wait, "next_pause"),  # tenacity's wait: the next pause's length
        "before-pause": (retry._Wait, "before_pause"),  # tenacity's before_sleep: the report
        # the check, before each attempt, that no --also target has failed for good
        "before-attempt": (wait.AlsoWaiter, "raise_if_failed_for_good"),
        "zmq-request": (zmq_client.ZmqGateway, "request"),  # the ZeroMQ round trip itself
        "watch-pause": (check.GatewayCheck, "watch_pause"),  # the PING queued in a pause
        "status": (check.GatewayCheck, "status"),  # the informational STATUS after ready
    }


def install(kind: str) -> None:
    from entrypoint import retry
    from entrypoint.commands import wait
    from entrypoint.gateway import check
    from entrypoint.log import logs

    raising = _raising_methods()
    if kind in raising:
        owner, name = raising[kind]
        setattr(owner, name, _boom)
    elif kind == "stop-rule":  # tenacity's stop: has the deadline passed?

        def stop_at(deadline: Any) -> Any:  # retry.stop_at's signature
            return _boom

        retry.stop_at = stop_at
    elif kind == "also-silent-death":  # the thread ends without an Exception or a report

        def leave(*_args: Any) -> NoReturn:
            raise SystemExit(0)

        wait._TargetCheck.attempt = leave  # type: ignore[method-assign,assignment]
    elif kind == "resolve":  # the name-lookup thread

        def lookup(*_args: Any, **_kwargs: Any) -> NoReturn:
            raise ValueError("injected failure in getaddrinfo")

        # The C function itself: the gate calls _socket's (gateway/tcp.py), socket.py's
        # getaddrinfo calls it too (the --also checks' libraries).
        _socket.getaddrinfo = lookup
    elif kind in ("log-processor", "dependency-ready-log"):
        # a structlog processor, on the ready event; or on the --also thread's
        # gate.dependency_ready (so the log call itself raises, inside that thread)
        failing = (
            ("gate.ready", "gate.error") if kind == "log-processor" else ("gate.dependency_ready",)
        )
        original = logs._order_keys

        def order_keys(logger: Any, name: str, event: Any) -> Any:
            if event.get("event") in failing:
                raise RuntimeError("injected failure in a log processor")
            return original(logger, name, event)

        logs._order_keys = order_keys  # type: ignore[assignment]
    elif kind == "signal-in-finalizer":  # SIGTERM handled while a __del__ runs
        original_check = check.GatewayCheck.attempt

        signalled: list[bool] = []

        def attempt_then_signal(self: Any, deadline: Any) -> Any:
            if not signalled:  # once: a second signal would exit on the spot anyway
                signalled.append(True)
                _SignalsInDelete()
            return original_check(self, deadline)

        check.GatewayCheck.attempt = attempt_then_signal  # type: ignore[method-assign]
    elif kind in _SET_UP_BY_A_FUNCTION:
        _SET_UP_BY_A_FUNCTION[kind]()
    elif kind in ("stray-thread", "unraisable"):
        original_attempt = check.GatewayCheck.attempt

        def attempt(self: Any, deadline: Any) -> Any:
            if kind == "stray-thread":  # a library's thread dying while the gate waits
                worker = threading.Thread(target=_boom, name="library-worker", daemon=True)
                worker.start()
                worker.join()
            else:  # an exception in __del__ (a garbage-collector callback)
                _RaisesOnDelete()
            return original_attempt(self, deadline)

        check.GatewayCheck.attempt = attempt  # type: ignore[method-assign]
    else:
        raise ValueError(f"unknown injection {kind!r}")


def _signal_once_the_first_stop_handler_is_in() -> None:
    """A SIGTERM the moment the gate's SIGTERM handler is in place, while the SIGINT one is
    still being set: the window a supervisor hits when it signals as soon as /proc shows
    the handler (5 runs in 300 with both cores busy). It lasts microseconds, so the signal
    is sent from inside, by wrapping the function the gate installs its handlers with
    (``_signal.signal``, which ``signal.signal`` wraps) for ``process/signals.py``'s first
    call (``__main__``'s first-line handler, installed before, is left alone)."""
    import os

    original = _signal.signal
    sent: list[bool] = []

    def set_then_signal(signum: Any, handler: Any) -> Any:
        previous = original(signum, handler)
        ours = getattr(handler, "__module__", None) == "entrypoint.process.signals"
        if not sent and signum == _signal.SIGTERM and ours:
            sent.append(True)
            os.kill(os.getpid(), _signal.SIGTERM)
            for _ in range(1000):  # bytecodes for the handler to run in, still inside
                pass
        return previous

    _signal.signal = set_then_signal


def _signal_in_a_finalizer_between_the_two_installs() -> None:
    """A SIGTERM swallowed by a finalizer after __main__ installed the stop handlers and
    before cli.main installs them again (which used to forget it)."""
    from entrypoint.process import failclosed

    original_install = failclosed.install

    def install_then_signal() -> None:
        original_install()
        _SignalsInDelete()

    failclosed.install = install_then_signal


def _send_only_once_the_peer_refused() -> None:
    """The gate scheduled late, as on a loaded machine: each request is queued only once
    the peer has refused the socket's connection (its monitor said so: the handshake
    failed, or the peer closed it), which is when a blocking send waited forever (libzmq
    had torn the pipe down). Waited for on that event, as long as it takes: a fixed
    give-up (5 s) let the request go out before the refusal it assumes, and the test saw
    a pause 5 s long (issue 27). The gate still gets every monitor event it asked for."""
    from entrypoint.gateway import pending, zmq_client
    from tests.support import watched_monitors

    watched_monitors.watch_every_monitor()

    original_open = zmq_client.ZmqGateway.open

    def open_then_wait(self: Any, *args: Any, **kwargs: Any) -> Any:
        opened = original_open(self, *args, **kwargs)
        watched_monitors.wait_for_refusal(opened.sock)
        return opened

    zmq_client.ZmqGateway.open = open_then_wait  # type: ignore[method-assign]

    original_pending = pending.pending_socket

    def pending_then_wait(*args: Any, **kwargs: Any) -> Any:
        sock, monitor = original_pending(*args, **kwargs)
        watched_monitors.wait_for_refusal(sock)
        return sock, monitor

    pending.pending_socket = pending_then_wait

    original_close = zmq_client.ZmqGateway.close

    def close_after_the_watches(self: Any) -> None:
        watched_monitors.stop_all(self._ctx)
        original_close(self)

    zmq_client.ZmqGateway.close = close_after_the_watches  # type: ignore[method-assign]


def _leak_one_descriptor_per_100_attempts() -> None:
    """The soak test's proof that it can fail: a leak that grows with the attempts."""
    import os

    from entrypoint.gateway import check

    leaked: list[int] = []
    calls = [0]
    original = check.GatewayCheck.attempt

    def attempt_leaking(self: Any, deadline: Any) -> Any:
        calls[0] += 1
        if calls[0] % 100 == 0:
            leaked.append(os.open(os.devnull, os.O_RDONLY))
        return original(self, deadline)

    check.GatewayCheck.attempt = attempt_leaking  # type: ignore[method-assign]


def _an_also_attempt_that_never_returns() -> None:
    """A client library that ignores every budget (a lookup stuck inside it, say): the
    main thread must still end the wait at the deadline."""
    from entrypoint.commands import wait

    def block(*_args: Any) -> NoReturn:
        threading.Event().wait()
        raise AssertionError("unreachable")

    wait._TargetCheck.attempt = block  # type: ignore[method-assign,assignment]


_SET_UP_BY_A_FUNCTION = {
    "also-never-returns": _an_also_attempt_that_never_returns,
    "signal-while-installing": _signal_once_the_first_stop_handler_is_in,
    "signal-in-finalizer-at-start": _signal_in_a_finalizer_between_the_two_installs,
    "leak-fd": _leak_one_descriptor_per_100_attempts,
    "send-after-refusal": _send_only_once_the_peer_refused,
}
