"""What `probe`, `mesh` and `explain` print for people fits a 160-column console.

A person reads these at 3 a.m.: no line is wider than 160 columns (colour codes do not
count), a long reply, hint or sentence goes on over indented lines with every word kept
whole, and a single word longer than a line is cut with a marker pointing at ``--json``,
whose output keeps everything on one line. Every scenario is the real CLI against real
peers on loopback: a simulated gateway with long replies or refusals, a closed port.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

from tests.support.bounds import COMMAND_S, EXIT_S, after_deadline
from tests.support.cli import run_gate
from tests.support.helpers import base_env
from tests.support.processes import StartSim
from tests.support.sockets import held_closed_port

WIDTH = 160
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A word no line can hold: a reply to this request echoes it (the simulator answers an
# unknown action with its name) and has no space in it.
LONG_ACTION = "PING_" + "X" * 200
LONG_STATUS = "STATUS_" + "Y" * 200
# Long but within a line: it is shown whole, folded onto a line of its own if need be.
LONG_PATH = "/" + "/".join(f"segment-{n}" for n in range(10)) + "/health?deep=1&verbose=yes"


def columns(line: str) -> int:
    """A terminal's columns (a wide emoji is two): at least the line's characters."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in line)


def assert_fits(text: str) -> None:
    """No line wider than WIDTH: neither in characters nor in a terminal's columns."""
    plain = ANSI.sub("", text)
    too_wide = [line for line in plain.splitlines() if len(line) > WIDTH or columns(line) > WIDTH]
    widest = max((columns(line) for line in plain.splitlines()), default=0)
    assert not too_wide, f"widest line {widest} columns:\n" + "\n".join(too_wide)


def words(text: str) -> str:
    """The text with every run of spaces and line breaks as one space: what a fold keeps."""
    return " ".join(ANSI.sub("", text).split())


def pub_port(proc: Any) -> int:
    return int(proc.wait_for_event("sim.listening")["pub_port"])


def probe(
    port: int, pub: int, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, str, dict[str, Any]]:
    """`mt5-gate probe` twice, as a person and as a machine reads it: (code, text, JSON)."""
    argv = [
        "probe",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--pub-port",
        str(pub),
        "--connect-timeout",
        "1",
        "--reply-timeout",
        "2",
        *extra,
    ]
    ran = run_gate(argv, env=env, timeout=EXIT_S)
    code, text = ran.code, ran.stdout
    ran = run_gate([*argv, "--json"], env=env, timeout=EXIT_S)
    json_code, machine = ran.code, ran.stdout
    assert json_code == code, (text, machine)
    return code, text, json.loads(machine)


def check(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in document["checks"] if c["name"] == name)


# --- probe -----------------------------------------------------------------------------


def test_probe_replies_are_folded_under_their_column_with_nothing_lost(sim: StartSim) -> None:
    """The simulator's PING reply (~150 characters) and STATUS reply (cut at 160 by the
    gate) made rows of 180-200 columns: now each goes on under where the detail started."""
    proc, port = sim()
    code, text, machine = probe(port, pub_port(proc))
    assert code == 0, text
    assert_fits(text)
    lines = text.splitlines()
    ping = next(i for i, line in enumerate(lines) if "ZeroMQ PING" in line)
    assert "reply in" in lines[ping]
    assert '{"status": "OK", "action": "PING"' in lines[ping]
    # the continuation starts under the detail's first column (✅ takes two), a hanging indent
    column = columns(lines[ping][: lines[ping].index("reply in")])
    assert lines[ping + 1].startswith(" " * column)
    assert not lines[ping + 1][column].isspace()
    assert '"server": "mt5-gate-sim"}' in words(text)
    status = check(machine, "STATUS")["detail"]  # each run's own uptime: up to it
    assert status.startswith('reply {"status": "OK", "action": "STATUS"')
    assert words(status.split('"uptime_s"')[0]) in words(text)  # every word, in order
    # Where the gate cut the reply, as in the JSON ("..." ends it). Where the cut falls
    # moves with each run's own uptime (`0.09` or `0.1`), and the text and the JSON come
    # from two runs: so the cut is looked for, not its place assumed.
    assert status.endswith("...")
    assert re.search(r"\S\.\.\.$", text, re.MULTILINE), text
    assert "Results: 6/6 checks passed" in text


def test_probe_a_reply_with_a_word_longer_than_a_line_is_cut_and_says_where_it_is_whole(
    sim: StartSim,
) -> None:
    """A bridge echoing a 200-character action: its reply has a word no line holds. The
    row cuts it and says `(whole reply: --json)`; the JSON has the detail uncut; the rest
    of the detail (the judgement) and the troubleshooting follow, folded."""
    proc, port = sim()
    code, text, machine = probe(
        port, pub_port(proc), "--ping-request", json.dumps({"action": LONG_ACTION})
    )
    assert code == 1
    assert_fits(text)
    assert "… (whole reply: --json)" in text
    assert "unknown action 'PING_XXXX" in words(text)
    assert "does not satisfy" in text
    detail = check(machine, "ZeroMQ PING")["detail"]
    assert "XXXXXXXXXX" * 12 in detail
    assert "whole reply" not in detail
    trouble = machine["troubleshooting"]
    assert trouble["reason"] == "not_ready"
    for sentence in [trouble["fix"], *trouble["steps"]]:
        assert words(sentence) in words(text)


def test_probe_a_refused_status_shows_its_reply_folded(sim: StartSim) -> None:
    """STATUS refused with a long echo: a warning whose reply goes on under its column."""
    proc, port = sim()
    code, text, machine = probe(
        port, pub_port(proc), "--status-request", json.dumps({"action": LONG_STATUS})
    )
    assert code == 0
    assert_fits(text)
    status = check(machine, "STATUS")
    assert status["status"] == "warn"
    assert "unknown action 'STATUS_YYYY" in words(text)
    assert words(status["detail"]) in words(text)  # its longest word fits a line: whole
    assert "Warnings are informational" in text


def test_probe_a_broker_state_fix_is_folded(sim: StartSim) -> None:
    """A dwx bridge refusing because the trade context is busy: its one-line fix was 250
    columns; now it is folded under `fix:` with every word, and the steps follow."""
    proc, port = sim("--dialect", "dwx", "--broker-state", "TRADE_CONTEXT_BUSY")
    listening = proc.wait_for_event("sim.listening")
    code, text, machine = probe(
        port,
        int(listening["pub_port"]),
        "--bridge",
        "dwx",
        "--reply-port",
        str(listening["reply_port"]),
    )
    assert code == 1
    assert_fits(text)
    trouble = machine["troubleshooting"]
    assert trouble["fix"].startswith("trade_context_busy:")
    assert "  fix: trade_context_busy:" in text
    assert words(trouble["fix"]) in words(text)
    lines = text.splitlines()
    after_fix = lines[next(i for i, line in enumerate(lines) if "  fix: " in line) + 1]
    assert after_fix.startswith("  - ") or (
        after_fix.startswith(" " * len("  fix: ")) and after_fix[len("  fix: ")] != " "
    )
    assert words(check(machine, "ZeroMQ PING")["detail"]) in words(text)
    assert "TRADE_CONTEXT_BUSY__ABORTED_COMMAND" in text


def test_probe_a_closed_port_keeps_its_steps_and_hint_within_the_width() -> None:
    port = held_closed_port()
    code, text, machine = probe(port, port)
    assert code == 1
    assert_fits(text)
    assert "Troubleshooting (refused):" in text
    for step in machine["troubleshooting"]["steps"]:
        assert words(step) in words(text)
    assert "more: `mt5-gate explain --reason refused`" in text


def test_probe_on_a_terminal_is_coloured_and_fits_without_the_colour_codes(sim: StartSim) -> None:
    """On a TTY the names are coloured: the codes do not count toward the width."""
    proc, port = sim("--bad-status")
    ran = run_gate(
        ["probe", "--host", "127.0.0.1", "--port", str(port), "--pub-port", str(pub_port(proc))],
        base_env(),
        timeout=EXIT_S,
        log="text",
        tty="stdout",
    )
    code, text = ran.code, ran.stdout.replace("\r\n", "\n")
    assert code == 1
    assert "\x1b[" in text
    assert_fits(text)
    assert 'not_ready: reply {"status": "MAINTENANCE"' in words(text)
    assert "give it the request it expects" in words(text)


# --- mesh ------------------------------------------------------------------------------


def test_mesh_folds_hints_and_long_rows(tmp_path: Path, sim: StartSim) -> None:
    """A refused gateway (its hint was one line of ~250 columns), a long HTTP URL and a
    long-named check of a gateway that is not ready: every line within the width, every
    hint whole, the JSON unchanged in shape."""
    closed = held_closed_port()
    _proc, bad_port = sim("--bad-status")
    url = f"http://127.0.0.1:{closed}{LONG_PATH}"
    mesh_file = tmp_path / "mesh.toml"
    mesh_file.write_text(
        "timeout = 2\n"
        "[[check]]\n"
        'kind = "zmq_ping"\n'
        f'target = "127.0.0.1:{bad_port}"\n'
        'name = "the strategy gateway of the second account, the one in Frankfurt"\n'
        "critical = false\n"
        "[[check]]\n"
        'kind = "tcp"\n'
        f'target = "127.0.0.1:{closed}"\n'
    )
    env = base_env(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(closed),
        GATEWAY_PUB_PORT=str(closed),
        GATE_MESH_HTTP=url,
    )
    args = ["mesh", "--file", str(mesh_file)]
    ran = run_gate(args, env=env, timeout=COMMAND_S)
    code, text = ran.code, ran.stdout
    ran = run_gate([*args, "--json"], env=env, timeout=COMMAND_S)
    json_code, machine_text = ran.code, ran.stdout
    machine = json.loads(machine_text)
    assert code == json_code == 2, text  # the gateway's PING is critical
    assert_fits(text)
    hints = {c["hint"] for c in machine["checks"] if c["status"] == "fail" and c["hint"]}
    assert any(f"Nothing listens on 127.0.0.1:{closed}" in hint for hint in hints), (
        f"no refusal hint for the closed port {closed}: {machine['checks']}"
    )
    for hint in hints:
        assert words(hint) in words(text), f"{hint!r} not whole in:\n{text}"
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if "→ Nothing listens" in line)
    assert lines[first + 1].startswith(" " * len("      → ")), text  # under the hint's start
    bad = next(c for c in machine["checks"] if c["name"].startswith("the strategy gateway"))
    assert bad["status"] == "fail", bad
    assert bad["detail"].startswith("not_ready"), bad
    assert words(bad["detail"]) in words(text), text
    assert "the strategy gateway of the second acco…" in text, text  # the name column
    assert "http http://127.0.0.1:" in text, text
    assert "Score: " in text, text
    assert "compromised (a critical check failed)" in text
    assert all("\n" not in c["detail"] and "(whole" not in c["detail"] for c in machine["checks"])


# --- explain ---------------------------------------------------------------------------


def gate_log(tmp_path: Path, *args: str, timeout_s: float = 1.5) -> Path:
    """A real `wait` that times out, its JSON log lines written to a file (twice: a
    container that restarted, so the summary has its fourth sentence)."""
    argv = [
        "wait",
        "--host",
        "127.0.0.1",
        "--timeout",
        str(timeout_s),
        "--backoff-initial",
        "0.05",
        "--backoff-max",
        "0.2",
        "--connect-timeout",
        "1",
        "--reply-timeout",
        "1",
        *args,
    ]
    lines: list[str] = []
    for _ in range(2):
        ran = run_gate(argv, timeout=after_deadline(timeout_s))
        code, events = ran.code, ran.events
        assert code == 69, events
        lines += [json.dumps(event) for event in events]
    log = tmp_path / "gate.log"
    log.write_text("\n".join(lines) + "\n")
    return log


def test_explain_folds_its_summary_advice_and_timeline(tmp_path: Path, sim: StartSim) -> None:
    """A gateway that is not ready and a dependency with a long URL behind a closed port:
    each sentence of the summary, each line of advice and each timeline row fits, with
    every word of the JSON's sentences in order."""
    _proc, port = sim("--bad-status")
    dependency = f"http://127.0.0.1:{held_closed_port()}{LONG_PATH}"
    log = gate_log(tmp_path, "--port", str(port), "--also", dependency)
    ran = run_gate(["explain", str(log)], timeout=EXIT_S)
    code, text = ran.code, ran.stdout
    ran = run_gate(["explain", str(log), "--json"], timeout=EXIT_S)
    json_code, machine_text = ran.code, ran.stdout
    machine = json.loads(machine_text)
    assert code == json_code == 0, text
    assert_fits(text)
    assert len(" ".join(machine["summary"])) > 2 * WIDTH  # one line of it was too wide
    for sentence in [*machine["summary"], *machine["advice"]]:
        assert words(sentence) in words(text)
    assert "restarted 1 time" in words(text)
    lines = text.splitlines()
    story = lines[lines.index("In short") + 1 :]
    story = story[: story.index("")]
    assert story[0].startswith("  The gate waited for")
    assert all(line.startswith(("  ", "    ")) for line in story)
    assert any(line.startswith("    ") for line in story)  # a folded sentence
    assert "Timeline" in lines
    assert "run 2 of 2" in text
    assert "\n" not in "".join(machine["summary"])  # the JSON is never folded


def test_explain_cuts_a_word_no_line_holds_and_points_at_json(tmp_path: Path) -> None:
    """A dependency whose URL alone is wider than a line: cut with the marker wherever it
    appears, never splitting the words around it."""
    closed = held_closed_port()
    dependency = f"http://127.0.0.1:{closed}/" + "/".join(["very-long-path-segment"] * 9)
    assert len(dependency) > WIDTH
    log = gate_log(tmp_path, "--port", str(closed), "--also", dependency, timeout_s=1.0)
    ran = run_gate(["explain", str(log)], timeout=EXIT_S)
    code, text = ran.code, ran.stdout
    assert code == 0
    assert_fits(text)
    assert "… (whole: --json)" in text
    assert f"http://127.0.0.1:{closed}/very-long-path-segment" in text
    assert "never answered" in text
    assert "The log holds 2 runs of the gate" in words(text)
    machine_text = run_gate(["explain", str(log), "--json"], timeout=EXIT_S).stdout
    assert dependency in json.loads(machine_text)["runs"][0]["also"]
