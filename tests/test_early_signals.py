"""A SIGTERM or Ctrl-C at any moment of the gate's start: the gate's one line and 130/143,
unless the signal came before Python ran the gate's first line (README, "Stop signals,
from the first line": the interpreter's own start-up, which no code of ours can cover;
there a Ctrl-C is a KeyboardInterrupt, or rarely swallowed by the interpreter).

Real starts, real signals, spread over the first tens of milliseconds. Whether the gate's
code had run when a signal was sent is seen from outside, two ways: /proc shows SIGTERM
caught (the gate's handlers are in: nothing else in the process catches SIGTERM), and
Python's import log (PYTHONPROFILEIMPORTTIME, one stderr line per module loaded) names a
module of the package other than the package itself, which only the gate's own code
imports (``-m`` imports just the package before it runs __main__).
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.bounds import AFTER_SIGNAL_S, EVENT_S
from tests.support.helpers import GATE, base_env, check_declared
from tests.support.sockets import closed_port

# 200 starts of ~0.1 s each (more when loaded): well inside this bound.
pytestmark = pytest.mark.timeout(180)

STARTS_PER_SIGNAL = 100
# The sends are spread from 0 to this many ms after the start, or to twice the time a
# start took to install its handlers, whichever is longer (a loaded machine starts slower).
SPREAD_MS = 50.0


def _catches_sigterm(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # already gone
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def _env() -> dict[str, str]:
    env = {k: v for k, v in base_env().items() if not k.startswith("COVERAGE_")}
    env["PYTHONPROFILEIMPORTTIME"] = "1"  # "import time: ... | module" on stderr, per module
    env.pop("PYTHONFAULTHANDLER", None)  # a fault handler would only add lines here
    return env


def _start(port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*GATE, "wait", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass
class Outcome:
    sig: signal.Signals
    delay_ms: float
    handlers_seen: bool  # /proc showed SIGTERM caught before the send
    code: int | None  # None: still running AFTER_SIGNAL_S after the send (then killed)
    stderr: str

    @property
    def imported(self) -> list[str]:
        return [
            line.rsplit("|", 1)[1].strip()
            for line in self.stderr.splitlines()
            if line.startswith("import time:") and "|" in line
        ]

    @property
    def other_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if not line.startswith("import time:")]

    @property
    def gate_code_ran(self) -> bool:
        """A module of the package other than the package itself was loaded: only the
        gate's own code (entrypoint/__main__.py's run) imports one."""
        return self.handlers_seen or any(m.startswith("entrypoint.") for m in self.imported)

    def problem(self) -> str | None:
        """None if the outcome is one the README promises; else what is wrong with it."""
        if self.code is None:
            return self._lost_problem()
        if self.code == 128 + self.sig:
            return self._line_problem()
        if self.gate_code_ran:
            return "the gate's code had run, yet it did not say gate.signal with 128+N"
        return self._interpreter_problem()

    def _line_problem(self) -> str | None:
        """Exit 128+N: every line the gate's JSON (a late send finds it logging already),
        the last one its gate.signal, and only one of those."""
        try:
            events = [json.loads(line) for line in self.other_lines]
        except ValueError:
            return f"exit {self.code} but not every line is JSON"
        for event in events:
            check_declared(event)
        signals = [e for e in events if e.get("event") == "gate.signal"]
        wanted = {"event": "gate.signal", "signal": self.sig.name, "exit_code": self.code}
        if len(signals) != 1 or events[-1] is not signals[0]:
            return f"exit {self.code} with {len(signals)} gate.signal lines, not one at the end"
        if {k: signals[0].get(k) for k in wanted} != wanted:
            return f"exit {self.code} but its line is {signals[0]}"
        return None

    def _lost_problem(self) -> str | None:
        """Still running: only right if the interpreter swallowed a Ctrl-C before the
        gate's code ran (a KeyboardInterrupt in an import lock's weakref callback is
        "Exception ignored"; in a .pth file, site reports it and carries on)."""
        if self.sig != signal.SIGINT or self.handlers_seen:
            return "still running after the signal"
        lines = self.stderr.splitlines()
        swallowed = next((i for i, line in enumerate(lines) if "KeyboardInterrupt" in line), None)
        ours = next(
            (
                i
                for i, line in enumerate(lines)
                if line.rsplit("|", 1)[-1].strip().startswith("entrypoint.")
            ),
            len(lines),
        )
        if swallowed is None or swallowed > ours:
            return "still running after the signal, and the interpreter did not swallow it"
        return None

    def _interpreter_problem(self) -> str | None:
        text = "\n".join(self.other_lines)
        if "entrypoint/" in text:
            return "a traceback through the gate's code"
        if self.sig == signal.SIGTERM:
            # Before any handler, SIGTERM's default action: killed, nothing written.
            return None if self.code == -signal.SIGTERM and not text else "not a plain kill"
        # SIGINT before the gate's handler is Python's KeyboardInterrupt: its traceback and
        # exit -2 (raised in runpy), or exit 1 (raised while the interpreter initialises:
        # io, site's .pth files, runpy's own import); or, before Python's own handler is
        # in, a plain kill (-2, nothing written).
        if self.code == -signal.SIGINT and not text:
            return None
        if self.code in (1, -signal.SIGINT) and text.endswith("KeyboardInterrupt"):
            return None
        return "not one of the interpreter's own outcomes of a Ctrl-C"

    def __str__(self) -> str:
        return (
            f"{self.sig.name} at {self.delay_ms:.1f} ms: exit {self.code}, "
            f"handlers seen={self.handlers_seen}, gate code ran={self.gate_code_ran}, "
            f"stderr besides imports: {self.other_lines[-6:]}, last import: "
            f"{self.imported[-1:] or 'none'}"
        )


def _ms_to_handlers(port: int) -> float:
    """How long one start takes to catch SIGTERM (polled), to scale the spread of sends."""
    proc = _start(port)
    begun = time.monotonic()
    deadline = begun + EVENT_S
    while not _catches_sigterm(proc.pid) and time.monotonic() < deadline:
        pass  # a busy poll: the moment, not a pause, is what is measured
    took = (time.monotonic() - begun) * 1000
    proc.kill()
    proc.communicate(timeout=AFTER_SIGNAL_S)
    return took


def _signal_at(port: int, sig: signal.Signals, delay_ms: float) -> Outcome:
    proc = _start(port)
    begun = time.monotonic()
    # The delay is the moment under test, not a wait for something: a busy wait keeps it
    # to the tenth of a millisecond that time.sleep would round away.
    while (time.monotonic() - begun) * 1000 < delay_ms:
        pass
    seen = _catches_sigterm(proc.pid)
    proc.send_signal(sig)
    try:
        _out, err = proc.communicate(timeout=AFTER_SIGNAL_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        return Outcome(sig, delay_ms, seen, None, err)
    return Outcome(sig, delay_ms, seen, proc.returncode, err)


def test_a_stop_at_any_moment_of_the_start_is_one_line_and_128_plus_n() -> None:
    # A CI shell that started pytest in the background without job control made it ignore
    # SIGINT, and an ignored signal is inherited: the gates must start with the default.
    signal.signal(signal.SIGINT, signal.default_int_handler)  # conftest puts pytest's back
    with closed_port() as port:
        # The slowest of three starts: one fast start on a loaded machine would make a
        # spread that ends before most starts reach the gate's code.
        spread_ms = max(SPREAD_MS, 2 * max(_ms_to_handlers(port) for _ in range(3)))
        outcomes = []
        for i in range(2 * STARTS_PER_SIGNAL):
            sig = signal.SIGINT if i % 2 else signal.SIGTERM
            # Spread evenly, in an order that mixes early and late sends.
            delay_ms = (i * 7919 % (2 * STARTS_PER_SIGNAL)) / (2 * STARTS_PER_SIGNAL) * spread_ms
            outcomes.append(_signal_at(port, sig, delay_ms))
    wrong = [f"{o}: {o.problem()}" for o in outcomes if o.problem()]
    assert not wrong, f"{len(wrong)} of {len(outcomes)} starts:\n" + "\n".join(wrong[:10])
    handled = [o for o in outcomes if o.code == 128 + o.sig]
    for sig in (signal.SIGINT, signal.SIGTERM):
        # The test only tests something if sends land inside the gate's start too.
        count = sum(o.sig == sig for o in handled)
        assert count >= STARTS_PER_SIGNAL // 5, (
            f"only {count} {sig.name} sends of {STARTS_PER_SIGNAL} reached the gate's code "
            f"(spread {spread_ms:.0f} ms): {[str(o) for o in outcomes[:4]]}"
        )


# A stop raised inside a finalizer (here a weakref callback, as the import system's are)
# once the gate's handlers are in: Python swallows it and reports it to
# sys.unraisablehook, whose default is a raw traceback. __main__ puts failclosed's hook in
# first, which says nothing of it.
_STOP_IN_A_FINALIZER = """
import os, signal, weakref
from entrypoint.errors import GateSignal
from entrypoint.process import signals

class Thing:
    pass

def finalizer(_ref):
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10_000):  # the handler runs here, between two bytecodes
        pass

install = signals.install_stop_handlers

def install_then_stop_in_a_finalizer():
    # The earliest moment: the handlers have just gone in.
    install()
    thing = Thing()
    ref = weakref.ref(thing, finalizer)
    del thing

signals.install_stop_handlers = install_then_stop_in_a_finalizer
from entrypoint.__main__ import fail_closed_then_catch_stops
fail_closed_then_catch_stops()
try:
    signals.raise_if_pending()
except GateSignal as stop:
    print(stop.exit_code)
"""


@pytest.mark.timeout(30)
def test_a_stop_swallowed_by_a_finalizer_as_the_gate_starts_is_silent_and_still_stops() -> None:
    proc = subprocess.run(
        [GATE[0], "-c", _STOP_IN_A_FINALIZER],
        env=_env() | {"PYTHONPROFILEIMPORTTIME": ""},
        capture_output=True,
        text=True,
        timeout=EVENT_S,
        check=False,
    )
    seen = f"exit {proc.returncode}, stdout {proc.stdout!r}, stderr {proc.stderr!r}"
    assert proc.stdout.strip() == str(128 + signal.SIGTERM), seen
    assert proc.stderr == "", seen
