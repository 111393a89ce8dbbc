"""``mt5-gate explain [FILE]``: the gate's log read back as three sentences and a timeline.

For the operator at 3 a.m.: ``docker logs mt5-strategy 2>&1 | mt5-gate explain`` says what
the gate waited for, what went wrong and for how long, and what to do next, with the real
host and port. Lines that are not the gate's are counted and skipped; nothing in the input
makes it fail (``gatelog`` reads it with bounded memory). Exit 0 when it found the gate's
lines, 1 when it found none, 64 on a usage error, 66 when FILE cannot be opened.
``explain --reason NAME`` prints a section of TROUBLESHOOTING.md and ``explain --bridge
[NAME]`` a preset's recipe from BRIDGES.md, both shipped in the package: the hints name
them, and they work where the gate runs (an image has no repository).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from collections.abc import Mapping
from typing import Any

from entrypoint.commands.arguments import OptionParser, add_json_flag, describe
from entrypoint.errors import OutputFailed, UsageError
from entrypoint.files import tell_stderr, write_report
from entrypoint.log.gatelog import GATEWAY, MIXED, LogSummary, Phase, Run, read_runs
from entrypoint.reasons import bridge_sections, see, troubleshooting_sections
from entrypoint.report import Painter, dump_json, duration, hanging, visible

EXIT_NO_GATE_LINES = 1
EXIT_NO_INPUT = 66  # sysexits EX_NOINPUT
PARAGRAPH = 4  # the continuation lines of a text that starts at column 2


def add_arguments(parser: OptionParser) -> None:
    describe(
        parser,
        usage="mt5-gate explain [FILE] [--json] | --reason NAME | --bridge [NAME]",
        description="Reads the gate's log lines from FILE or standard input (e.g. "
        "`docker logs mt5-strategy 2>&1 | mt5-gate explain`), skips every "
        "line that is not the gate's, and prints a three-sentence summary, "
        "the advice for the reason that mattered (hint, TROUBLESHOOTING "
        "section, next command) and a timeline per gate run (a restarted "
        "container has several). --reason and --bridge print a section of "
        "TROUBLESHOOTING.md or BRIDGES.md instead (the commands the hints name).",
        epilog="exit codes: 0 explained, 1 no line of the gate found, 64 usage error, "
        "66 FILE cannot be read, 74 the report cannot be written to stdout",
    )
    file_help = "a log file (default: standard input; - is standard input)"
    parser.add_argument("file", nargs="?", metavar="FILE", default=None, help=file_help)
    add_json_flag(parser)
    document = parser.add_mutually_exclusive_group()  # one section at a time
    document.add_argument(
        "--reason",
        metavar="NAME",
        default=None,
        help="print the troubleshooting section NAME and exit: a reason "
        "(refused, timeout, not_ready...), broker-states, a broker "
        "state (broker-state-ea-disabled...) or dependencies",
    )
    document.add_argument(
        "--bridge",
        metavar="NAME",
        nargs="?",
        const="",
        help="print the BRIDGES.md section of the preset NAME (dwx...) and exit; alone, "
        "how to find any bridge's settings; 'all', the whole document",
    )


# Said on stderr when standard input is a terminal: a person who typed `mt5-gate explain`
# alone would otherwise see nothing happen while it waits for input.
READING_A_TERMINAL = (
    "mt5-gate explain: reading a gate log from standard input (Ctrl-D ends it; or give a file)"
)


def run(args: argparse.Namespace, _command: list[str], _environ: Mapping[str, str]) -> int:
    try:
        return _explain(args)
    except OutputFailed as exc:  # a full stdout; a person reads explain's errors: one line
        tell_stderr(exc.message)
        return exc.exit_code


def _explain(args: argparse.Namespace) -> int:
    if args.reason is not None or args.bridge is not None:
        return _print_section(args)
    try:
        summary = _read(args.file)
    except OSError as exc:
        tell_stderr(f"mt5-gate explain: cannot read {args.file}: {exc.strerror or exc}")
        return EXIT_NO_INPUT

    def report() -> None:
        if args.json:
            dump_json(as_json(summary), sys.stdout)
        else:
            sys.stdout.write(render(summary, Painter(sys.stdout)))

    if not write_report("explain", report):  # `| head`: the reader has what it wanted
        return 0
    return 0 if summary.gate_lines else EXIT_NO_GATE_LINES


def report_usage_error(exc: UsageError) -> int:
    """A person is reading: one plain line, not a JSON log event."""
    tell_stderr(exc.message)
    return exc.exit_code


def _print_section(args: argparse.Namespace) -> int:
    by_reason = args.reason is not None
    if args.file is not None or args.json:
        flag = "--reason" if by_reason else "--bridge"
        raise UsageError(f"mt5-gate explain: {flag} takes neither FILE nor --json")
    name = args.reason if by_reason else args.bridge
    kind = "troubleshooting section" if by_reason else "bridge preset"
    sections = troubleshooting_sections() if by_reason else bridge_sections()
    text = sections.get(name)
    if text is None:
        raise UsageError(
            f"mt5-gate explain: no {kind} {name!r}; one of: {', '.join(n for n in sections if n)}"
        )
    write_report("explain", lambda: sys.stdout.write(text))
    return 0


def _read(path: str | None) -> LogSummary:
    if path is None and sys.stdin.isatty():
        tell_stderr(READING_A_TERMINAL)
    if path is None or path == "-":
        return read_runs(sys.stdin.buffer)
    with open(path, "rb") as stream:
        return read_runs(stream)


# --- text -------------------------------------------------------------------------------


def render(summary: LogSummary, paint: Painter) -> str:
    """The report for people. Every text taken from the log goes through ``visible``: a
    log is untrusted input, and a forged line must not drive the reader's terminal. No
    line is wider than ``report.WIDTH`` columns: a longer text goes on under where it
    started, indented (``report.hanging``); ``--json`` has each text on one line."""
    out = [*hanging("", _header(summary), len("mt5-gate explain: ")), ""]
    if not summary.runs:
        out += hanging(
            "",
            "No line of the gate was found: is this the log of a container "
            "whose entrypoint is mt5-gate, with GATE_LOG_FORMAT=json?",
            0,
        )
        return "\n".join(out) + "\n"
    last = summary.runs[-1]
    out.append(paint.bold("In short"))  # a sentence a line: a fold never splits two
    for sentence in _story(last, summary):
        out += hanging("  ", visible(sentence), PARAGRAPH)
    out.append("")
    advice = _advice(last)
    if advice:
        out += [paint.bold(line) for line in hanging("", visible(advice[0]), 2)]
        for line in advice[1:]:
            out += hanging("  ", visible(line), PARAGRAPH)
        out.append("")
    out.append(paint.bold("Timeline"))
    if summary.earlier_outcomes:
        counted = ", ".join(f"{outcome} x{n}" for outcome, n in summary.earlier_outcomes.items())
        out += hanging(
            "  ",
            visible(
                f"({sum(summary.earlier_outcomes.values())} earlier runs not shown: {counted})"
            ),
            PARAGRAPH,
        )
    first = summary.runs_seen - len(summary.runs) + 1
    for number, one in enumerate(summary.runs, start=first):
        for lead, text, indent in _timeline(one, number, summary.runs_seen):
            out += hanging(lead, visible(text), indent)
    return "\n".join(out) + "\n"


def _header(summary: LogSummary) -> str:
    runs = f"{summary.runs_seen} gate run{'s' if summary.runs_seen != 1 else ''}"
    skipped = [f"{summary.other_lines} not the gate's"] if summary.other_lines else []
    if summary.unreadable:
        skipped.append(f"{summary.unreadable} unreadable (cut or corrupt)")
    if summary.overlong:
        skipped.append(f"{summary.overlong} too long to be the gate's")
    tail = f" ({', '.join(skipped)})" if skipped else ""
    return f"mt5-gate explain: {runs} in {summary.lines} lines{tail}"


def _story(run: Run, summary: LogSummary) -> list[str]:
    """Three sentences: what it waited for, what went wrong and for how long, the end."""
    target = _short(run.target) if run.target else "the gateway"
    deadline = f" (deadline {duration(run.deadline_s)})" if run.deadline_s else ""
    also = f" and {_short(', '.join(run.also), 300)}" if run.also else ""
    cut = "" if run.started_at else " (the log starts after the gate did)"
    said = [f"The gate waited for {target}{also}{deadline}{cut}."]
    by_target: dict[str, list[Phase]] = {}  # one pass: a log may name 40,000 targets
    for phase in run.phases:
        by_target.setdefault(phase.target, []).append(phase)
    targets = list(by_target)
    stories = []
    for name, mine in by_target.items():
        parts = [
            f"{_reason_text(p.reason)} for {duration(p.duration_s)} ({_attempts(p.attempts)})"
            for p in mine[-4:]
        ]
        earlier = "after earlier failures, " if len(mine) > 4 else ""
        who = "" if len(targets) == 1 else f"{name or 'the gateway'}: "
        stories.append(f"{who}{earlier}{', then '.join(parts)}")
    if stories:
        said.append(f"Its attempts failed with {'; '.join(stories)}.")
    elif run.outcome in ("ready", "exec"):
        said.append("The gateway answered at once.")
    said.append(_ending(run))
    if summary.runs_seen > 1:
        said.append(
            f"The log holds {summary.runs_seen} runs of the gate: the container "
            f"restarted {summary.runs_seen - 1} time"
            f"{'s' if summary.runs_seen > 2 else ''}."
        )
    return said


def _ending(run: Run) -> str:
    end = run.end or {}
    after = duration(run.ended_s)
    if run.outcome == "exec":
        argv = end.get("argv")
        shown = " ".join(str(a) for a in argv) if isinstance(argv, list) else "the runner"
        return f"It was ready after {after} and started `{_short(shown)}`."
    if run.outcome == "ready":
        return f"It was ready after {after} (no command to start)."
    if run.outcome == "timeout":
        what = end.get("target") or "the gateway"
        return (
            f"It gave up after {after}: {what} {_how_it_answered(run, what)} (exit "
            f"{end.get('exit_code', 69)}); the runner never started."
        )
    if run.outcome == "signal":
        return (
            f"It was stopped by {end.get('signal', 'a signal')} after {after} while "
            f"waiting (exit {end.get('exit_code', '?')}); the runner never started."
        )
    if run.outcome == "error":
        return (
            f"It stopped after {after} with exit {end.get('exit_code', '?')}: "
            f"{_short(str(end.get('error', 'an error')), 200)}."
        )
    return f"The log ends while it was still waiting, {after} in."


# Reasons whose attempts got an answer: a refusal, or bytes that could not be read.
ANSWERED = {"not_ready": "answered with a refusal", "bad_reply": "answered unreadably"}


def _how_it_answered(run: Run, what: str) -> str:
    """What the target that timed out did: "never answered" only when it did not answer
    at all (a bridge that said "not ready" every time answered every time)."""
    target = GATEWAY if what == "the gateway" else what
    reasons = {p.reason for p in run.phases if p.target == target}
    refused = run.rejected is not None and (run.rejected.get("target") or GATEWAY) == target
    answered = [ANSWERED[reason] for reason in ANSWERED if reason in reasons] or (
        [ANSWERED["not_ready"]] if refused else []
    )
    if not answered:
        return "never answered"
    said = " or ".join(answered)
    return f"{said} every time" if reasons <= set(ANSWERED) else f"{said}, never ready"


def _advice(run: Run) -> list[str]:
    """A title, then the hint, the troubleshooting section and the next command."""
    if run.outcome == "error":
        end = run.end or {}
        code = end.get("exit_code")
        lines = [f"What to do (exit {code})"]
        if end.get("hint"):
            lines.append(_short(str(end["hint"]), 600))
        reason = end.get("reason")
        if reason:
            lines.append(f"More: {see(str(reason))}")
        if code == 70 and end.get("exception"):  # without one, the environment's doing
            lines.append(
                "This is a bug in the gate: report it with the gate.error line "
                "(its traceback has no local variables, so no secrets)."
            )
        elif code == 64:
            lines.append("Next: fix the setting it names; `mt5-gate wait --help` lists them.")
        elif reason:
            lines.append(f"Next: {_probe(run)}")
        return lines
    phase = run.dominant()
    if phase is None:
        return []
    if run.outcome in ("ready", "exec") and phase.duration_s < 1:
        return []  # a blip on the way to ready needs no advice
    title = "What went wrong" if run.outcome not in ("ready", "exec") else "What held it up"
    state = f" (broker state: {phase.broker_state})" if phase.broker_state else ""
    lines = [f"{title}: {_who(phase)}{phase.reason}{state}"]
    if phase.error:
        lines.append(f"Last error: {_short(phase.error, 300)}")
    if phase.hint:
        lines.append(_short(phase.hint, 600))
    section = see(phase.reason)
    if phase.reason not in (MIXED, "unknown") and section not in phase.hint:
        lines.append(f"More: {section}")
    if phase.reason == "not_ready" and run.rejected and run.rejected.get("fix"):
        lines.append(f"Fix: {_short(str(run.rejected['fix']), 300)}")
    lines.append(f"Next: {_probe(run, phase)}")
    return lines


def _probe(run: Run, phase: Phase | None = None) -> str:
    """The command to run next, inside the container, with the real host and port."""
    if phase is not None and phase.target != GATEWAY:
        host, port = _host_port(run.target)
        return (
            f"`mt5-gate wait --host {host} --port {port} --timeout 10 --also "
            f"{phase.target}` in the container shows this dependency's attempts"
        )
    host, port = _host_port(run.target)
    if not host:
        return "`mt5-gate probe` in the container (it uses the same GATEWAY_* settings)"
    bridge = f" --bridge {run.bridge}" if run.bridge not in ("", "mt5-gate") else ""
    return f"`mt5-gate probe --host {host} --port {port}{bridge}` in the container"


def _timeline(run: Run, number: int, total: int) -> list[tuple[str, str, int | None]]:
    """The run's lines as (lead, text, indent of the text's continuation lines)."""
    start = _clock(run.started_at) if run.started_at else "(start not in the log)"
    pid = f", pid {run.pid}" if run.pid is not None else ""
    lines: list[tuple[str, str, int | None]] = [
        (
            "  ",
            f"run {number} of {total}  {start}{pid}: waiting for {_short(run.target) or '?'}"
            + (f", deadline {duration(run.deadline_s)}" if run.deadline_s else ""),
            PARAGRAPH,
        )
    ]
    rows = [
        (
            p.started_s,
            f"{_who(p)}{_reason_text(p.reason)} for {duration(p.duration_s)} "
            f"({_attempts(p.attempts)})",
        )
        for p in run.phases
    ]
    if run.phases_merged:
        rows.append(
            (
                run.phases[-1].started_s,
                f"({run.phases_merged} further changes of reason folded into the last line)",
            )
        )
    if run.ready is not None:
        ready = run.ready
        rtt = ready.get("rtt_ms")
        # Through the PING queued in a pause, `attempt` numbers the attempt that failed.
        when = (
            f"during the pause after attempt {ready.get('attempt', '?')}"
            if ready.get("via") == "pause"
            else f"attempt {ready.get('attempt', '?')}"
        )
        rows.append(
            (
                run.ended_s if run.outcome == "ready" else _at(run, ready),
                f"ready ({when}" + (f", round trip {rtt} ms" if rtt is not None else "") + ")",
            )
        )
    for name in run.dependencies_ready:
        rows.append((run.ended_s, f"{name or 'a dependency'} ready"))
    if run.outcome not in ("ready", "waiting"):
        rows.append((run.ended_s, _end_row(run)))
    elif run.outcome == "waiting":
        rows.append((run.ended_s, "the log ends here, still waiting"))
    for at, text in sorted(rows, key=lambda row: row[0]):
        lines.append((f"    +{duration(at):<12} ", text, None))  # under the text
    return lines


def _end_row(run: Run) -> str:
    end = run.end or {}
    if run.outcome == "exec":
        argv = end.get("argv")
        return "exec " + _short(
            " ".join(str(a) for a in argv) if isinstance(argv, list) else "the runner"
        )
    if run.outcome == "timeout":
        return (
            f"timeout, exit {end.get('exit_code', 69)} "
            f"(last reason {end.get('last_reason') or '?'})"
        )
    if run.outcome == "signal":
        return f"stopped by {end.get('signal')}, exit {end.get('exit_code')}"
    return f"error, exit {end.get('exit_code')}: {_short(str(end.get('error')), 120)}"


def _at(run: Run, event: dict[str, Any]) -> float:
    elapsed = event.get("elapsed_s")
    return float(elapsed) if isinstance(elapsed, (int, float)) else run.ended_s


# --- JSON -------------------------------------------------------------------------------


def as_json(summary: LogSummary) -> dict[str, Any]:
    last = summary.runs[-1] if summary.runs else None
    return {
        "lines": {
            "total": summary.lines,
            "gate": summary.gate_lines,
            "other": summary.other_lines,
            "unreadable": summary.unreadable,
            "overlong": summary.overlong,
        },
        "runs_seen": summary.runs_seen,
        "earlier_outcomes": dict(summary.earlier_outcomes),
        "runs": [_run_json(one) for one in summary.runs],
        "summary": _story(last, summary) if last else [],
        "advice": _advice(last) if last else [],
    }


def _run_json(run: Run) -> dict[str, Any]:
    dominant = run.dominant()
    return {
        "started_at": run.started_at or None,
        "pid": run.pid,
        "target": run.target or None,
        "deadline_s": run.deadline_s,
        "command": run.command,
        "also": run.also,
        "outcome": run.outcome,
        "duration_s": round(run.ended_s, 3),
        "exit_code": (run.end or {}).get("exit_code") if run.outcome != "exec" else None,
        "phases": [
            {
                "target": p.target or None,
                "reason": p.reason,
                "started_s": round(p.started_s, 3),
                "duration_s": round(p.duration_s, 3),
                "attempts": p.attempts,
                "broker_state": p.broker_state or None,
            }
            for p in run.phases
        ],
        "phases_folded": run.phases_merged,
        "dependencies_ready": run.dependencies_ready,
        "diagnosis": None
        if dominant is None
        else {
            **{k: v for k, v in dataclasses.asdict(dominant).items() if k != "target"},
            "target": dominant.target or None,
        },
    }


# --- words ------------------------------------------------------------------------------


def _who(phase: Phase) -> str:
    return f"{_short(phase.target)}: " if phase.target != GATEWAY else ""


def _reason_text(reason: str) -> str:
    return "failing for changing reasons" if reason == MIXED else reason


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clock(stamp: str) -> str:
    try:
        parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp[:40]
    return parsed.strftime(
        "%Y-%m-%d %H:%M:%S UTC"
        if parsed.utcoffset() is not None and not parsed.utcoffset()
        else "%Y-%m-%d %H:%M:%S %z"
    )


def _host_port(target: str) -> tuple[str, str]:
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return "", ""
    return host.strip("[]"), port
