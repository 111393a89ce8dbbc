"""The console format a person reads at 3 a.m.: no line wider than 160 characters, and
nothing lost: long values are folded onto indented lines, a runner's argv is cut short
with a marker pointing at ``--log-format json``, the hint follows the reason it explains.

Real gate commands are run with ``--log-format console`` (stderr is a pipe here, so
without colour: NO_COLOR or not, that is what a log collector gets), once more on a
pseudo-terminal (with colour, whose codes do not count), and the JSON run of the same
command says what information the console lines must still carry.
"""

from __future__ import annotations

import io
import json
import re
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from entrypoint.log.consolelog import WIDTH, fold, pack, visible_len
from entrypoint.log.logs import configure_logging, get_logger
from tests.support.bounds import EXIT_S, FAST_WAIT, after_deadline
from tests.support.cli import run_gate
from tests.support.helpers import base_env, free_port, parse_lines
from tests.support.processes import StartGate, StartSim
from tests.support.sockets import held_closed_port

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Longer than a line whatever the interpreter's path: shown cut short, with the marker.
RUNNER = [
    sys.executable,
    "-c",
    "pass",
    "--config",
    "/etc/strategy/a-rather-long-config.yaml",
    "--symbols",
    "EURUSD,GBPUSD,USDJPY,AUDUSD,USDCHF,NZDUSD,USDCAD,EURGBP,EURJPY",
    "--journal",
    "/var/lib/strategy/journal/eurusd-gbpusd-usdjpy.sqlite3",
    "--verbose",
    "--dry-run",
]
# As long as the demo's runner (`python -m entrypoint.sim.demo_runner --ticks 5`): shown whole.
SHORT_RUNNER = [sys.executable, "-c", "pass", "entrypoint.sim.demo_runner", "--ticks", "5"]


def run(args: list[str], fmt: str, timeout: float = EXIT_S) -> tuple[int, str]:
    ran = run_gate(
        [args[0], "--log-format", fmt, *args[1:]],
        timeout=timeout,
        log="json" if fmt == "json" else "text",
    )
    return ran.code, ran.stderr


def assert_fits(text: str) -> None:
    too_wide = [line for line in text.splitlines() if visible_len(line) > WIDTH]
    assert too_wide == [], "\n".join(too_wide)


def words(text: str) -> list[str]:
    return text.split()


def assert_all_words_shown(value: str, console: str) -> None:
    """Every word of ``value`` is in the console text (folding only moves line breaks)."""
    flat = " ".join(console.split())
    missing = [word for word in words(value) if word not in flat]
    assert missing == [], missing


def console_lines_of(lines: list[str], name: str) -> list[str]:
    """The console lines of every ``name`` event: its first line and the indented ones."""
    found: list[str] = []
    inside = False
    for line in lines:
        if not line.startswith(" "):
            inside = f"] {name} " in line or line.endswith(f"] {name}")
        if inside:
            found.append(line)
    return found


def test_a_failing_waits_lines_fit_and_keep_their_information() -> None:
    """gate.start with a long runner argv and --also, each first gate.attempt_failed with its
    long hint, gate.timeout: every line within 160 columns; every word of every hint, error
    and dependency shown; the argv cut short with a pointer to the JSON format."""
    gateway, dependency = held_closed_port(), held_closed_port()
    args = [
        "wait",
        "--host",
        "127.0.0.1",
        "--port",
        str(gateway),
        "--timeout",
        "1",
        *FAST_WAIT,
        "--also",
        f"tcp://127.0.0.1:{dependency}",
        "--also",
        f"http://operator:s3cret@127.0.0.1:{dependency}/health/ready?full=1",
        "--",
        *RUNNER,
    ]
    code, console = run(args, "console", after_deadline(1))
    json_code, json_text = run(args, "json", after_deadline(1))
    assert (code, json_code) == (69, 69)
    assert_fits(console)
    events = parse_lines(json_text)
    for event in events:
        assert f"] {event['event']}" in console or f" {event['event']} " in console
        for key in ("hint", "error"):
            if key in event:
                assert_all_words_shown(event[key], console)
    start = events[0]
    for also in start["also"]:
        assert also in console
    assert "s3cret" not in console
    assert "--log-format json" in console  # the argv's marker
    assert " ".join(RUNNER[:3]) in console
    assert "backoff={initial_s:0.05,max_s:0.2}" in console
    assert len(" ".join(RUNNER)) > WIDTH  # the marker was needed


def test_a_runner_that_fits_a_line_is_shown_whole_and_no_field_says_none(sim: StartSim) -> None:
    """The demo's case: a runner's argv that fits a line is in gate.start and gate.exec
    whole (it used to be `python -m ... +3 more`, hiding the module the README says is
    exec'd), and gate.start shows no `=None` field (the JSON line keeps them)."""
    _simulator, port = sim()
    args = ["wait", "--host", "127.0.0.1", "--port", str(port), "--", *SHORT_RUNNER]
    code, console = run(args, "console")
    json_code, json_text = run(args, "json")
    assert (code, json_code) == (0, 0), console
    assert_fits(console)
    lines = console.splitlines()
    whole = " ".join(SHORT_RUNNER)
    for name in ("gate.start", "gate.exec"):
        shown = console_lines_of(lines, name)
        assert any(whole in line for line in shown), "\n".join(shown)
    assert "more (all in --log-format json)" not in console, console
    start = console_lines_of(lines, "gate.start")
    assert [line for line in start if "=None" in line] == [], "\n".join(start)
    nones = [key for key, value in parse_lines(json_text)[0].items() if value is None]
    assert nones, "the JSON gate.start no longer has a None field to leave out"


def test_an_error_that_fits_a_line_is_never_split(sim: StartSim) -> None:
    """Folding happens between words only where it must: an error short enough for a line
    of its own is shown on one line (`ECONNREFUSED: Connection` / `refused` was split where
    the attempt's first line ran out), and a long hint keeps its backquoted command whole."""
    port = held_closed_port()
    code, console = run(
        ["wait", "--host", "127.0.0.1", "--port", str(port), "--timeout", "0.8", *FAST_WAIT],
        "console",
        after_deadline(0.8),
    )
    assert code == 69
    assert_fits(console)
    mentions = [line for line in console.splitlines() if "ECONNREFUSED" in line]
    assert len(mentions) >= 2, console
    split = [line for line in mentions if "ECONNREFUSED: Connection refused'" not in line]
    assert split == [], "\n".join(split)
    assert f"`netstat -an | findstr {port}`" in console, console


def test_ready_in_a_pause_says_so_in_words(gate: StartGate, sim: StartSim) -> None:
    """A gateway that binds during the pause after attempt 1: the console says "during the
    pause after attempt 1", not `attempt=1` right after "attempt=1 ... refused"."""
    port = free_port()
    # A 30 s step: the pause after the first attempt lasts 15-30 s (equal jitter), so the
    # simulator started after that attempt binds inside it (~0.5 s, ~3 s loaded).
    proc = gate(
        "wait",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-format",
        "console",
        "--backoff-initial",
        "30",
        "--backoff-max",
        "30",
    )
    proc.wait_for_stderr("gate.attempt_failed")
    sim("--port", str(port))
    assert proc.wait(timeout=EXIT_S) == 0, "\n".join(proc.stderr_lines)
    ready = console_lines_of(proc.stderr_lines, "gate.ready")
    assert ready, "\n".join(proc.stderr_lines)
    assert "during the pause after attempt 1" in ready[0], "\n".join(ready)
    assert not any("attempt=" in line for line in ready), "\n".join(ready)
    assert not any("via=" in line for line in ready), "\n".join(ready)


def test_the_hint_is_on_the_line_of_the_reason_it_explains() -> None:
    """The first gate.attempt_failed line holds reason= and the start of hint=; its words
    go on over indented lines; a repeated reason shows no hint (``explain`` relies on it)."""
    code, console = run(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            "--timeout",
            "0.8",
            *FAST_WAIT,
        ],
        "console",
        after_deadline(0.8),
    )
    assert code == 69
    lines = console.splitlines()
    failed = [index for index, line in enumerate(lines) if "gate.attempt_failed" in line]
    assert len(failed) >= 2
    first = lines[failed[0]]
    assert "reason=refused" in first
    assert first.index("reason=refused") < first.index("hint=")
    assert lines[failed[0] + 1].startswith(" ")  # the hint goes on, indented
    assert not any(
        "hint=" in line
        for line in lines[failed[1] :]
        if "gate.timeout" not in line and not line.startswith(" ")
    )


def test_a_usage_error_fits() -> None:
    """gate.error for an invalid value: the whole error shown, within 160 columns."""
    code, console = run(
        ["wait", "--host", "127.0.0.1", "--port", "not-a-port-at-all" * 8], "console"
    )
    _, json_text = run(["wait", "--host", "127.0.0.1", "--port", "not-a-port-at-all" * 8], "json")
    assert code == 64
    assert_fits(console)
    assert "gate.error" in console.splitlines()[0]
    assert "error=" in console.splitlines()[0]
    assert_all_words_shown(parse_lines(json_text)[0]["error"], console)


def test_ready_status_and_exec_lines_fit(sim: StartSim) -> None:
    """An answering gateway: gate.ready (with the reply), gate.status and gate.exec (the
    runner's argv again, cut short) all fit."""
    _simulator, port = sim()
    code, console = run(
        ["wait", "--host", "127.0.0.1", "--port", str(port), "--", *RUNNER], "console"
    )
    assert code == 0
    assert_fits(console)
    for name in ("gate.start", "gate.ready", "gate.status", "gate.exec"):
        assert name in console
    exec_line = next(line for line in console.splitlines() if "gate.exec" in line)
    assert "program=" in console
    assert "gate.exec" in exec_line


def test_colour_codes_do_not_count_and_lines_still_fit() -> None:
    """On a terminal (auto format: console with colour), the visible width is what counts."""
    env = base_env()
    del env["GATE_LOG_FORMAT"]
    ran = run_gate(
        [
            "wait",
            "--host",
            "127.0.0.1",
            "--port",
            str(held_closed_port()),
            "--timeout",
            "0.3",
            "--",
            *RUNNER,
        ],
        env,
        log="text",
        tty="stderr",
    )
    code, text = ran.code, ran.stderr
    assert code == 69
    assert "\x1b[" in text
    assert_fits(text.replace("\r\n", "\n"))
    plain = ANSI.sub("", text)
    assert "reason=refused" in plain
    assert "hint=" in plain


def test_a_traceback_in_the_console_fits() -> None:
    """An internal error's traceback (a long message included) is folded too."""
    stream = io.StringIO()
    configure_logging("console", "info", stream)
    try:
        raise RuntimeError("x" * 150 + " a message longer than any terminal " + "y" * 200)
    except RuntimeError:
        get_logger().exception(
            "gate.error", error="internal error (please report this as a bug)", exit_code=70
        )
    text = stream.getvalue()
    assert_fits(text)
    assert "Traceback (most recent call last):" in text
    assert "x" * 150 in "".join(line.strip() for line in text.splitlines())


def test_nested_values_are_compact_and_json_is_untouched() -> None:
    """A mapping as {k:v}, a list as [a,b] in the console; the JSON line keeps them as
    they are."""
    console, machine = io.StringIO(), io.StringIO()
    fields: dict[str, Any] = {
        "backoff": {"initial_s": 0.5, "max_s": 10.0},
        "expect_status": ["OK", "PONG"],
        "curve": None,
    }
    configure_logging("console", "info", console)
    get_logger().info("gate.start", **fields)
    configure_logging("json", "info", machine)
    get_logger().info("gate.start", **fields)
    assert "backoff={initial_s:0.5,max_s:10.0} expect_status=[OK,PONG]" in console.getvalue()
    assert "curve" not in console.getvalue()  # a None says nothing to a person
    assert {k: v for k, v in json.loads(machine.getvalue()).items() if k in fields} == fields


# --- the folding itself ------------------------------------------------------------------

TEXT = st.lists(
    st.text(alphabet="abcdefghij=:'/", min_size=1, max_size=40), min_size=1, max_size=40
).map(" ".join)
COLOUR = st.sampled_from(["", "\x1b[36m", "\x1b[1m", "\x1b[0m", "\x1b[2m\x1b[35m"])


def test_fold_keeps_a_backquoted_command_on_one_line() -> None:
    """A command in backquotes (to be copied) is not broken where a space outside it will
    do; only one longer than a line is."""
    text = "Check the bridge is bound (`netstat -an | findstr 5555`), and the firewall."
    pieces = fold(text, 40, 60)
    assert any("`netstat -an | findstr 5555`" in piece for piece in pieces), pieces
    assert all(visible_len(piece) <= 60 for piece in pieces)
    assert fold("`" + "a b " * 30 + "`", 20, 20)[0] == "`a b a b a b a b a b"


@settings(derandomize=True, deadline=None, database=None, max_examples=300)
@given(
    text=TEXT,
    first=st.integers(1, 160),
    rest=st.integers(8, 160),
    colours=st.lists(st.tuples(st.integers(0, 2000), COLOUR), max_size=6),
)
def test_fold_keeps_every_character_within_the_widths(
    text: str, first: int, rest: int, colours: list[tuple[int, str]]
) -> None:
    coloured = text
    for wanted, code in sorted(colours, reverse=True):
        position = min(wanted, len(coloured))
        if "\x1b" not in coloured[max(0, position - 8) : position]:
            coloured = coloured[:position] + code + coloured[position:]
    pieces = fold(coloured, first, rest)
    assert visible_len(pieces[0]) <= max(1, first)
    assert all(visible_len(piece) <= rest for piece in pieces[1:])
    plain = [ANSI.sub("", piece) for piece in pieces]
    # Only spaces at the breaks are dropped: the words, in order, are all there.
    assert "".join(plain).replace(" ", "") == ANSI.sub("", coloured).replace(" ", "")


@settings(derandomize=True, deadline=None, database=None, max_examples=200)
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(["hint", "error", "reply", "attempt"]), TEXT),
        min_size=1,
        max_size=8,
    )
)
def test_pack_never_passes_the_width(pairs: list[tuple[str, str]]) -> None:
    head = "2026-12-02T08:55:26.392020Z [warning  ] gate.attempt_failed           "
    rendered = [(key, f"{key}={value}") for key, value in pairs]
    lines = pack(head, rendered)
    assert all(visible_len(line) <= WIDTH for line in lines)
    joined = " ".join(" ".join(lines).split())
    for _key, pair in rendered:
        assert all(word in joined for word in pair.split())
