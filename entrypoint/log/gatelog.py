"""Reading the gate's own JSON log back: the runs, their phases and how each ended.

``docker logs`` interleaves the gate's JSON events with whatever the runner prints, may be
cut anywhere (``--tail``, rotation), may hold several gate runs (a restarting container)
and may come from other versions of the gate. ``read_runs`` streams it line by line and
keeps only aggregates, so memory stays bounded however long the log is: a run keeps at
most ``MAX_PHASES`` phases per target (past ``MAX_RUN_PHASES`` in all, no more than one
each), and only the last ``MAX_RUNS`` runs are kept in full (earlier ones are counted by
outcome). Time is linear in the lines, however many targets they name.

Vocabulary: a *run* is one start of the gate; a *phase* is a stretch of consecutive failed
attempts with the same reason, for one target (the gateway, or an ``--also`` URL).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from entrypoint.log import events

MAX_LINE_BYTES = 256 * 1024  # a gate line is < 4 KiB; anything longer is someone else's
MAX_PHASES = 50
# Past this many in a run (thousands of --also targets), a target's next change of reason
# folds into its last phase too: every target keeps one phase at least, no more.
MAX_RUN_PHASES = 10_000
MAX_RUNS = 20
MIXED = "mixed"  # the reason of a phase that folds many short ones together
GATEWAY = ""  # the target key of the gateway itself (its events carry no "target")


@dataclasses.dataclass
class Phase:
    target: str
    reason: str
    started_s: float  # seconds after the run's start (or its first line, when cut)
    ended_s: float
    attempts: int
    hint: str = ""
    error: str = ""
    broker_state: str = ""  # the state the bridge named (gateway/broker_states), if any
    # When its last failure's pause ended: the attempt that first failed otherwise began
    # there, so that is where the next phase starts (not when that attempt was logged).
    resume_s: float | None = None

    @property
    def duration_s(self) -> float:
        return max(self.ended_s - self.started_s, 0.0)


@dataclasses.dataclass
class Run:
    started_at: str = ""  # ISO timestamp of gate.start ("" when the log starts mid-run)
    pid: int | None = None
    target: str = ""
    bridge: str = ""  # the --bridge preset, when gate.start names one
    deadline_s: float | None = None
    command: list[str] | None = None
    also: list[str] = dataclasses.field(default_factory=list)
    phases: list[Phase] = dataclasses.field(default_factory=list)
    phases_merged: int = 0  # phases beyond MAX_PHASES folded into the last one
    ready: dict[str, Any] | None = None
    status: dict[str, Any] | None = None
    dependencies_ready: list[str] = dataclasses.field(default_factory=list)
    rejected: dict[str, Any] | None = None  # the last gate.reply_rejected (has the fix)
    outcome: str = "waiting"  # ready, exec, timeout, signal, error, waiting
    end: dict[str, Any] | None = None  # the event that ended the run
    ended_s: float = 0.0
    last_line_s: float = 0.0
    _origin: float | None = None  # epoch seconds of the run's first timestamp
    # Each target's last phase and how many it has: looked up per line, so a dict, never a
    # scan of ``phases`` (a log of 40,000 targets took 212 s when each line scanned them).
    _latest: dict[str, Phase] = dataclasses.field(default_factory=dict, repr=False)
    _counts: Counter[str] = dataclasses.field(default_factory=Counter, repr=False)

    def seconds(self, event: dict[str, Any]) -> float:
        """Seconds since the run started, from the event's timestamp (or elapsed_s)."""
        when = _epoch(event.get("timestamp"))
        if when is not None:
            if self._origin is None:
                self._origin = when
            return max(when - self._origin, 0.0)
        elapsed = event.get("elapsed_s")
        return float(elapsed) if isinstance(elapsed, (int, float)) else self.last_line_s

    def failed(self, event: dict[str, Any], at: float) -> None:
        target = _text(event.get("target"))
        reason = _text(event.get("reason")) or "unknown"
        count = 1 + _count(event.get("suppressed"))
        current = self.current(target)
        pause = event.get("next_retry_s")
        resume = at + pause if isinstance(pause, (int, float)) and pause >= 0 else None
        if current is not None and current.reason == reason:
            current.ended_s, current.resume_s = at, resume
            current.attempts += count
            current.hint = _text(event.get("hint")) or current.hint
            current.error = _text(event.get("error")) or current.error
            current.broker_state = _text(event.get("broker_state"))
            return
        if current is not None and current.reason != MIXED:
            boundary = at if current.resume_s is None else min(current.resume_s, at)
            current.ended_s = max(boundary, current.started_s)
        if current is not None and (
            current.reason == MIXED
            or self._counts[target] >= MAX_PHASES
            or len(self.phases) >= MAX_RUN_PHASES
        ):
            # Bounded memory: a reason flapping all day folds into one last phase.
            self.phases_merged += 1
            current.reason, current.attempts = MIXED, current.attempts + count
            current.ended_s, current.resume_s = at, resume
            return
        started = current.ended_s if current is not None else 0.0
        phase = Phase(
            target,
            reason,
            started,
            at,
            count,
            _text(event.get("hint")),
            _text(event.get("error")),
            _text(event.get("broker_state")),
            resume,
        )
        self.phases.append(phase)
        self._latest[target] = phase
        self._counts[target] += 1

    def current(self, target: str) -> Phase | None:
        return self._latest.get(target)

    def close(self, at: float, *, gateway_too: bool = True) -> None:
        """The run ended (or the log did) at ``at``: the phases still open end there too;
        the gateway's only if it was not ready before (``--also`` ones may still wait)."""
        self.ended_s = at
        for target, phase in self._latest.items():
            if gateway_too or target != GATEWAY:
                phase.ended_s = max(phase.ended_s, at)

    def dominant(self) -> Phase | None:
        """The phase that explains the run: the last one if it never got ready, else the
        longest."""
        if not self.phases:
            return None
        if self.outcome in ("timeout", "waiting", "signal", "error"):
            failing = _text((self.end or {}).get("target"))
            mine = [p for p in self.phases if p.target == failing] or self.phases
            return mine[-1]
        return max(self.phases, key=lambda p: p.duration_s)


@dataclasses.dataclass
class LogSummary:
    lines: int = 0
    gate_lines: int = 0
    other_lines: int = 0  # the runner's output, other JSON, blank lines
    unreadable: int = 0  # looked like a gate line but could not be read (cut, corrupt)
    overlong: int = 0
    runs_seen: int = 0
    runs: list[Run] = dataclasses.field(default_factory=list)
    earlier_outcomes: Counter[str] = dataclasses.field(default_factory=Counter)


def read_runs(stream: BinaryIO) -> LogSummary:
    summary = LogSummary()
    run: Run | None = None
    for event in _events(stream, summary):
        name = event["event"]
        starts = name == events.START.name
        if starts or run is None or (run.outcome not in ("waiting", "ready")):
            if not starts and run is not None and run.outcome == "exec":
                continue  # the runner's own structlog lines after the exec, say
            run = _begin(summary, run, event if starts else None)
            if starts:
                continue
        _apply(run, event)
    if run is not None:
        if run.outcome in ("waiting", "ready"):
            run.close(run.last_line_s, gateway_too=run.ready is None)
        summary.runs.append(run)
        summary.runs = summary.runs[-MAX_RUNS:]
    return summary


def _begin(summary: LogSummary, previous: Run | None, start: dict[str, Any] | None) -> Run:
    if previous is not None:
        if previous.outcome in ("waiting", "ready"):
            previous.close(previous.last_line_s, gateway_too=previous.ready is None)
        summary.runs.append(previous)
        if len(summary.runs) > MAX_RUNS:
            summary.earlier_outcomes[summary.runs.pop(0).outcome] += 1
    summary.runs_seen += 1
    run = Run()
    if start is not None:
        run.started_at = _text(start.get("timestamp"))
        run.seconds(start)
        run.pid = start["pid"] if isinstance(start.get("pid"), int) else None
        run.target = _text(start.get("target"))
        run.bridge = _text(start.get("bridge"))
        deadline = start.get("deadline_s")
        run.deadline_s = float(deadline) if isinstance(deadline, (int, float)) else None
        command = start.get("command")
        run.command = [_text(c) for c in command] if isinstance(command, list) else None
        also = start.get("also")
        run.also = [_text(a) for a in also] if isinstance(also, list) else []
    return run


def _apply(run: Run, event: dict[str, Any]) -> None:
    name = event["event"]
    at = run.seconds(event)
    run.last_line_s = at
    if name == events.ATTEMPT_FAILED.name:
        run.failed(event, at)
    elif name == events.READY.name:
        run.ready, run.outcome = event, "ready"
        run.close(at)
    elif name == events.STATUS.name:
        run.status = event
    elif name == events.REPLY_REJECTED.name:
        run.rejected = event
    elif name == events.DEPENDENCY_READY.name:
        run.dependencies_ready.append(_text(event.get("target")))
    elif name in ENDINGS:
        run.outcome = name.removeprefix("gate.")
        run.end = event
        run.close(at, gateway_too=run.ready is None)
    # any other gate.* event (a newer version's) is read and left out of the story


ENDINGS = frozenset(event.name for event in events.ENDINGS)


def _events(stream: BinaryIO, summary: LogSummary) -> Iterator[dict[str, Any]]:
    for raw in _lines(stream, summary):
        summary.lines += 1
        start = raw.find(b"{")
        if start < 0 or b'"gate.' not in raw:
            summary.other_lines += 1
            continue
        try:  # tolerate a prefix: `compose logs` ("svc-1  | {...}"), `kubectl --timestamps`
            event = json.loads(
                raw[start:].decode("utf-8"), parse_constant=_not_json, parse_float=_finite
            )
        except (ValueError, RecursionError):
            summary.unreadable += 1
            continue
        name = event.get("event") if isinstance(event, dict) else None
        if not isinstance(name, str) or not name.startswith("gate."):
            summary.other_lines += 1
            continue
        summary.gate_lines += 1
        yield event


def _not_json(constant: str) -> float:
    """NaN and Infinity are not JSON, and the gate never writes them: the line is not ours."""
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    """A JSON number as a float; one too large for a float (1e999) is not the gate's."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def _lines(stream: BinaryIO, summary: LogSummary) -> Iterable[bytes]:
    while True:
        raw = stream.readline(MAX_LINE_BYTES)
        if not raw:
            return
        if not raw.endswith(b"\n") and len(raw) == MAX_LINE_BYTES:
            summary.overlong += 1  # skip the rest of it, a bounded chunk at a time
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            continue
        yield raw.strip()


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
