"""The dialect: request templates, their placeholders, and how a reply is judged.

In-process: these are the rules users configure with --ping-request, --status-request and
--ready-when, so each rule is pinned here; the real bridges are in test_bridges.py.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from entrypoint.errors import AttemptFailed, UsageError
from entrypoint.gateway.advice import suggest_fix
from entrypoint.gateway.dialect import DEFAULT_DIALECT, NotReady, parse_request
from entrypoint.settings.config import settings_from_sources
from tests.support.bounds import FAST_ATTEMPT
from tests.support.cli import run_gate
from tests.support.processes import StartSim


def judge(reply: bytes, **flags: str) -> Any:
    settings = settings_from_sources({"host": "gw", **flags}, {})
    return settings.dialect.judge([reply])


def verdict(reply: Any) -> bool:
    try:
        DEFAULT_DIALECT.judge([json.dumps(reply).encode()])
    except NotReady:
        return False
    return True


def usage_error(argv: list[str], env: dict[str, str]) -> str:
    """``mt5-gate ARGV`` in-process must exit 64 with exactly one JSON line: its error."""
    ran = run_gate(argv, env, in_process=True, log="text")
    assert ran.code == 64
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return str(json.loads(lines[0])["error"])


@pytest.mark.parametrize(
    ("reply", "ready"),
    [
        ({"status": "OK"}, True),
        ({"status": "pong"}, True),  # statuses are compared case-insensitively
        ({"result": "pong"}, True),  # no status at all: nothing says "no"
        ({}, True),
        ({"status": "OK", "error": None}, True),
        ({"status": "OK", "error": ""}, True),
        ({"status": "OK", "error": False}, True),
        ({"ok": True, "success": True}, True),
        ({"status": "MAINTENANCE"}, False),
        ({"status": "ERROR", "error": "Invalid request structure"}, False),
        ({"status": None}, False),  # present but not an accepted status
        ({"status": 42}, False),
        ({"ok": False, "error": "unauthorized"}, False),  # the token bridge's refusal
        ({"ok": False}, False),
        ({"success": False}, False),
        ({"ok": 0}, False),  # MQL5's booleans are 0/1
        ({"success": "false"}, False),
        ({"ok": "FALSE", "status": "OK"}, False),
        ({"ok": 1, "success": "true"}, True),
        ({"ok": 0.0}, False),
        ({"ok": "no"}, False),
        ({"Status": "ERROR", "Error": "Unauthorized"}, False),  # C# and MQL5 capitalise keys
        ({"STATUS": "ERROR"}, False),
        ({"OK": False}, False),
        ({"Success": False}, False),
        ({"Status": "Ok"}, True),
        ({"err": "unauthorized"}, False),
        ({"status": "OK", "errors": ["unauthorized"]}, False),
        ({"status": "OK", "errors": []}, True),
        ({"result": "error"}, False),
        ({"result": False}, False),
        ({"result": "FAILED"}, False),
        ({"result": {"bid": 1.1}}, True),
        ({"status": "OK", "error": "terminal not connected"}, False),
        ({"status": "OK", "error": 0}, False),  # only null, false or empty mean "no error"
        ("OK", False),  # not an object: the default wants one
        (["OK"], False),
        (None, False),
    ],
)
def test_default_judgement_is_the_documented_one(reply: Any, ready: bool) -> None:
    """Object; status (if any) accepted; ok/success (if any) not false; error (if any) empty."""
    assert verdict(reply) is ready


def test_plain_text_reply_is_judged_as_a_json_string() -> None:
    """A bare OK is the string "OK": ready with --ready-when "@ == 'OK'", not by default."""
    assert judge(b"OK", ready_when="@ == 'OK'") == "OK"
    with pytest.raises(NotReady):
        judge(b"OK")


def test_status_is_compared_as_text() -> None:
    """--expect-status 200 accepts a numeric status 200 as well as "200"."""
    assert judge(b'{"status": 200}', expect_status="200") == {"status": 200}
    assert judge(b'{"status": "200"}', expect_status="200") == {"status": "200"}
    with pytest.raises(NotReady):
        judge(b'{"status": 500}', expect_status="200")


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"status":"OK"}\x00', {"status": "OK"}),  # MQL5 StringToCharArray's terminator
        (b'\xef\xbb\xbf{"status":"OK"}', {"status": "OK"}),  # a UTF-8 byte-order mark
        ('{"status":"OK"}'.encode("utf-16-le"), {"status": "OK"}),  # MQL5's own strings
        ('{"status":"OK"}\x00'.encode("utf-16-le"), {"status": "OK"}),
        ('\ufeff{"status":"OK"}'.encode("utf-16-le"), {"status": "OK"}),
        ('\ufeff{"status":"OK"}'.encode("utf-16-be"), {"status": "OK"}),
        (
            '{"status":"OK","broker":"Société"}'.encode("cp1252"),
            {"status": "OK", "broker": "Société"},
        ),
        (b"OK\r\n", "OK"),  # plain text without the line ending around it
        (b"  PONG\x00", "PONG"),
        # MQL5 sending a whole fixed-size buffer: the JSON ends at the C string's NUL.
        (b'{"status":"OK"}\x00{"status":"ERR', {"status": "OK"}),
    ],
)
def test_what_windows_bridges_add_around_a_reply_is_tolerated(raw: bytes, value: Any) -> None:
    """Byte-order marks, C terminators, UTF-16, Windows-1252 and white space around plain
    text do not hide a ready reply."""
    assert judge(raw, ready_when="@") == value


def test_other_encodings_are_taken_only_when_they_give_json() -> None:
    """Not UTF-8 and not JSON in UTF-16 or Windows-1252 either: bad_reply, not a guess."""
    for raw in (
        b"\xff\xfe",
        b"\xff\xfe\xfd not utf-8",
        b"O\x00K\x00 \x81",
        b"OK\x00stale bytes of a fixed buffer",
    ):
        with pytest.raises(AttemptFailed) as failed:
            judge(raw, ready_when="@")
        assert failed.value.reason.value == "bad_reply", raw


def test_undecodable_replies_are_bad_reply_and_multipart_is_protocol() -> None:
    """not_ready is for replies that decode; bytes that cannot be decoded are bad_reply."""
    for raw, reason in ((b"\xff\xfe", "bad_reply"), (b"[" * 100_000, "bad_reply")):
        with pytest.raises(AttemptFailed) as failed:
            judge(raw, ready_when="@")
        assert failed.value.reason.value == reason
    with pytest.raises(AttemptFailed) as multipart:
        DEFAULT_DIALECT.judge([b"{}", b"{}"])
    assert multipart.value.reason.value == "protocol"


def test_ready_when_is_truthy_and_zero_is_not() -> None:
    """false, null, "", [], {} and the number 0 are not ready (MQL5 sends booleans as 0/1:
    ``connected`` must not pass on {"connected": 0}); anything else is."""
    for truthy in (
        b'{"v": 1}',
        b'{"v": -1}',
        b'{"v": 0.5}',
        b'{"v": true}',
        b'{"v": "0"}',
        b'{"v": [0]}',
        b'{"v": {"a": 0}}',
    ):
        assert judge(truthy, ready_when="v")
    for falsy in (
        b'{"v": 0}',
        b'{"v": 0.0}',
        b'{"v": false}',
        b'{"v": null}',
        b'{"v": ""}',
        b'{"v": []}',
        b'{"v": {}}',
        b"{}",
    ):
        with pytest.raises(NotReady):
            judge(falsy, ready_when="v")


@pytest.mark.parametrize(
    ("expression", "reply"),
    [
        ("upper(status) == 'OK'", b'{"status": 42}'),  # jmespath's own type error
        ("bid > `0`", b'{"bid": "1.1"}'),  # MQL5's DoubleToString: Python's TypeError
        ('bid > `"0"`', b'{"bid": 1.1}'),
        ("floor(x) > `0`", b'{"x": 1e999}'),  # OverflowError
        ("ceil(x) > `0`", b'{"x": NaN}'),  # ValueError
        ("max_by(x, &a).a", b'{"x": [{"a": 1}, {"a": "b"}]}'),
    ],
)
def test_expression_errors_on_a_reply_are_not_ready_never_a_crash(
    expression: str, reply: bytes
) -> None:
    """An expression that cannot be evaluated on this reply is not_ready (retried), not an
    internal error: the reply is the bridge's, whatever its types."""
    with pytest.raises(AttemptFailed) as failed:
        judge(reply, ready_when=expression)
    assert failed.value.reason.value == "not_ready"
    assert "could not be evaluated" in failed.value.error


def test_a_key_given_twice_with_different_values_is_bad_reply() -> None:
    """{"status":"ERROR","status":"OK"}: which one counts would be the parser's guess."""
    with pytest.raises(AttemptFailed) as failed:
        judge(b'{"status": "ERROR", "status": "OK"}')
    assert failed.value.reason.value == "bad_reply"
    assert judge(b'{"status": "OK", "status": "OK"}') == {"status": "OK"}


def test_not_ready_names_the_reply_and_the_expression() -> None:
    """The log line carries what the bridge said and the judgement it failed."""
    with pytest.raises(NotReady) as failed:
        judge(b'{"status": "DISCONNECTED"}', ready_when="status == 'CONNECTED'")
    assert "DISCONNECTED" in failed.value.error
    assert "status == 'CONNECTED'" in failed.value.error


def test_placeholders_are_filled_fresh_for_every_request(tmp_path: Path) -> None:
    """$now is ISO 8601 UTC, $now_epoch a float, $uuid new each time, $$ a literal $."""
    template = parse_request(
        '{"a": "$now", "b": "$now_epoch", "c": "$uuid", '
        '"d": ["$uuid"], "e": "$$now", "f": "x$now", "g": 1}',
        "--x",
    )
    first, second = (json.loads(template.render()) for _ in range(2))
    assert first["a"].endswith("+00:00")
    assert isinstance(first["b"], float)
    # The wall clock at render time (microseconds ago), not another clock (monotonic: the
    # seconds since boot) or unit (ms: 1000x); 60 s is far beyond any scheduling delay.
    assert abs(first["b"] - time.time()) < 60
    assert str(uuid.UUID(first["c"])) == first["c"]
    assert first["c"] != second["c"]
    assert first["d"][0] != first["c"]
    assert (first["e"], first["f"], first["g"]) == ("$now", "x$now", 1)


def test_file_placeholder_is_read_once_and_never_shown(tmp_path: Path) -> None:
    """$file: puts the stripped content in the request only: not in repr, describe or logs."""
    secret = tmp_path / "token"
    secret.write_text("s3cr3t-t0ken\n")
    settings = settings_from_sources(
        {"host": "gw", "ping_request": f'{{"action": "PING", "token": "$file:{secret}"}}'}, {}
    )
    secret.write_text("changed")  # read once, at start
    assert json.loads(settings.dialect.ping.render())["token"] == "s3cr3t-t0ken"
    for shown in (repr(settings), str(settings.dialect.describe())):
        assert "s3cr3t" not in shown
        assert str(secret) in shown or "secret" in shown


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--ping-request", "{not json", "not valid JSON"),
        ("--ping-request", '["PING"]', "must be a JSON object"),
        ("--ping-request", '"PING"', "must be a JSON object"),
        ("--ping-request", '{"action": "$nope"}', "unknown placeholder"),
        ("--ping-request", '{"t": "$file:/nonexistent/token"}', "cannot read /nonexistent/token"),
        ("--ping-request", '{"t": "$file:"}', "needs a path"),
        ("--status-request", "{", "not valid JSON"),
        ("--ready-when", "status ==", "not a valid JMESPath expression"),
        ("--ready-when", "   ", "must not be empty"),
    ],
)
def test_invalid_dialect_settings_are_usage_errors_naming_flag_and_variable(
    flag: str, value: str, message: str
) -> None:
    """Bad templates and expressions: exit 64 at start, one line naming the flag and var."""
    variable = {
        "--ping-request": "GATE_PING_REQUEST",
        "--status-request": "GATE_STATUS_REQUEST",
        "--ready-when": "GATE_READY_WHEN",
    }[flag]
    # health never sends STATUS, so it does not read GATE_STATUS_REQUEST at all.
    checks_it = (
        [(["health", "--host", "gw"], {variable: value})] if flag != "--status-request" else []
    )
    for argv, env in [(["wait", "--host", "gw", flag, value], {}), *checks_it]:
        if argv[0] == "health":
            health = run_gate(argv, env, in_process=True, log="text")
            assert health.code == 1  # health's contract: 1 and one line on stdout
            assert message in health.stdout
            continue
        error = usage_error(argv, env)
        assert message in error
        assert f"{flag} / {variable}" in error


def test_empty_and_binary_token_files_are_usage_errors(tmp_path: Path) -> None:
    """An empty or non-text token file is caught at start, and its content never echoed."""
    empty, binary = tmp_path / "empty", tmp_path / "binary"
    empty.write_text("  \n")
    binary.write_bytes(b"\xff\xfeSECRETBYTES")
    for path, message in ((empty, "is empty"), (binary, "not UTF-8")):
        error = usage_error(
            ["wait", "--host", "gw", "--ping-request", f'{{"token": "$file:{path}"}}'], {}
        )
        assert message in error
        assert "SECRETBYTES" not in error


def test_ready_when_and_expect_status_together_is_a_usage_error() -> None:
    """Both at the same level: 64. A flag beats the other's variable, as everywhere."""
    error = usage_error(["wait", "--host", "gw", "--ready-when", "ok", "--expect-status", "OK"], {})
    assert "--ready-when" in error
    assert "--expect-status" in error
    usage_error(["wait", "--host", "gw"], {"GATE_READY_WHEN": "ok", "GATE_EXPECT_STATUS": "OK"})
    by_flag = settings_from_sources(
        {"host": "gw", "ready_when": "ok"}, {"GATE_EXPECT_STATUS": "OK"}
    )
    assert by_flag.dialect.judgement.expression == "ok"
    by_status_flag = settings_from_sources(
        {"host": "gw", "expect_status": "READY"}, {"GATE_READY_WHEN": "ok"}
    )
    assert "READY" in by_status_flag.dialect.judgement.expression


def test_status_request_defaults_and_none() -> None:
    """STATUS is asked by default; `none` skips it; a custom PING alone skips it too."""
    assert settings_from_sources({"host": "gw"}, {}).dialect.status is not None
    assert (
        settings_from_sources({"host": "gw", "status_request": "NONE"}, {}).dialect.status is None
    )
    custom = settings_from_sources({"host": "gw"}, {"GATE_PING_REQUEST": '{"cmd": "ping"}'})
    assert custom.dialect.status is None
    both = settings_from_sources(
        {"host": "gw"},
        {"GATE_PING_REQUEST": '{"cmd": "ping"}', "GATE_STATUS_REQUEST": '{"cmd": "info"}'},
    )
    assert both.dialect.status is not None
    assert json.loads(both.dialect.status.render()) == {"cmd": "info"}


def test_expect_status_values_cannot_break_the_default_expression() -> None:
    """Odd characters in --expect-status stay data: quotes and backticks are escaped."""
    settings = settings_from_sources({"host": "gw", "expect_status": "it's,`x`"}, {})
    assert settings.dialect.judge([b'{"status": "IT\'S"}']) == {"status": "IT'S"}
    with pytest.raises(NotReady):
        settings.dialect.judge([b'{"status": "OK"}'])


def test_same_refusal_is_recognised_whatever_its_timestamps_and_ids() -> None:
    """Replies that differ only in time or id fields count as the same refusal."""

    def refusal(reply: dict[str, Any]) -> str:
        with pytest.raises(NotReady) as failed:
            DEFAULT_DIALECT.judge([json.dumps(reply).encode()])
        assert failed.value.same_as is not None
        return failed.value.same_as

    one = refusal({"status": "ERROR", "error": "bad", "req_id": "a", "timestamp": 1.0})
    two = refusal({"status": "ERROR", "error": "bad", "req_id": "b", "timestamp": 2.0})
    other = refusal({"status": "ERROR", "error": "worse", "req_id": "a", "timestamp": 1.0})
    assert one == two
    assert one != other


@pytest.mark.parametrize(
    ("reply", "expected", "never"),
    [
        ("OK", "GATE_READY_WHEN=\"@ == 'OK'\"", None),
        ({"status": "SUCCESS", "data": {"status": "alive"}}, "status == 'SUCCESS'", None),
        ({"ok": False, "error": "unauthorized"}, "refuses this request", "GATE_READY_WHEN="),
        (
            {"status": "ERROR", "error": "Invalid request structure"},
            "GATE_PING_REQUEST",
            "GATE_READY_WHEN=",
        ),
        ({"status": "MAINTENANCE"}, "refuses", "status == 'MAINTENANCE'"),
        ("access denied", "refuses", 'GATE_READY_WHEN="@'),
        ("ERROR: unknown command", "refuses", 'GATE_READY_WHEN="@'),
        ({"status": "NOT_CONNECTED"}, "refuses", "NOT_CONNECTED'"),
        ({"status": "UNKNOWN_ACTION"}, "refuses", "GATE_EXPECT_STATUS="),
        ({"status": "SUCCESS", "data": {"status": "dead"}}, "refuses", "GATE_EXPECT_STATUS="),
        ({"status": "OK", "error": "token mismatch"}, "refuses", "GATE_EXPECT_STATUS="),
        # Not pasteable: quotes, backslashes and control characters are never suggested.
        ('READY "1"', "GATE_READY_WHEN to an expression", "@ =="),
        ("C:\\MT5 up", "GATE_READY_WHEN to an expression", "@ =="),
        ("UP\x1b[2J\x1b]0;pwned\x07", "GATE_READY_WHEN to an expression", "\x1b"),
    ],
)
def test_probe_fix_never_suggests_accepting_a_refusal(
    reply: Any, expected: str, never: str | None
) -> None:
    """The one-line fix: accept what looks like readiness; fix the request for a refusal."""
    fix = suggest_fix(reply, DEFAULT_DIALECT)
    assert expected in fix
    if never is not None:
        assert never not in fix


def test_probe_fix_never_repeats_a_secret_the_bridge_echoed(tmp_path: Path) -> None:
    """A bridge answering "bad token: <the request>" as plain text: no literal is
    suggested, so the token cannot reach the fix line."""
    token = tmp_path / "token"
    token.write_text("S3cr3t-Tok\n")
    settings = settings_from_sources(
        {"host": "gw", "ping_request": f'{{"action":"PING","token":"$file:{token}"}}'}, {}
    )
    assert b"S3cr3t-Tok" in settings.dialect.ping.render()  # registered as a secret
    for echoed in ("up S3cr3t-Tok", "up: " + settings.dialect.ping.render().decode()):
        fix = suggest_fix(echoed, settings.dialect)
        assert "S3cr3t-Tok" not in fix
        assert "@ ==" not in fix


def test_usage_error_in_a_template_never_echoes_a_secret(tmp_path: Path) -> None:
    """A bad placeholder beside a good token: the error names the placeholder, not the token."""
    secret = tmp_path / "token"
    secret.write_text("TOPSECRET")
    error = usage_error(
        ["wait", "--host", "gw", "--ping-request", f'{{"t": "$file:{secret}", "u": "$bogus"}}'], {}
    )
    assert "$bogus" in error
    assert "TOPSECRET" not in error


def test_parse_request_errors_are_usage_errors() -> None:
    """The module raises UsageError (exit 64) with the place it was given."""
    with pytest.raises(UsageError, match="--here"):
        parse_request("[]", "--here")


def test_probe_fix_quotes_the_heartbeat_bridges_error_not_its_request_id(sim: StartSim) -> None:
    """The heartbeat dialect echoes the request's `req_id` before its `error`: an id with a
    word such as "no" in it was quoted as the refusal. The fix line quotes the error."""
    _sim, port = sim("--dialect", "heartbeat")
    request = '{"action":"PING","req_id":"no-1","timestamp":"$now_epoch","payload":{}}'
    ran = run_gate(
        [
            "probe",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--bridge",
            "heartbeat",
            "--ping-request",
            request,
            *FAST_ATTEMPT,
            "--json",
        ],
        log="text",
    )
    assert ran.code == 1, ran.stdout
    fix = json.loads(ran.stdout)["troubleshooting"]["fix"]
    assert '("Unknown action: PING")' in fix, fix
    assert "no-1" not in fix, fix


@pytest.mark.parametrize(
    "reply",
    [
        {"req_id": "5e1b-dead-4c2f", "status": "ERROR", "data": None, "error": "Stale request"},
        {"timestamp": "no later than now", "status": "ERROR", "message": "unknown action 'X'"},
    ],
)
def test_probe_fix_never_quotes_an_id_or_a_timestamp(reply: dict[str, Any]) -> None:
    fix = suggest_fix(reply, DEFAULT_DIALECT)
    assert "dead" not in fix, fix
    assert "later" not in fix, fix
    assert ("Stale request" in fix) or ("unknown action" in fix), fix
