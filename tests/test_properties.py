"""Property tests (Hypothesis) of every parser of user input.

Property: an input is either rejected at start (exit 64 and exactly one line) or accepted
and behaves (ready, or waits until its deadline); never exit 70, a traceback or a hang.
The gate runs in this process (``cli.main``) against a real simulated gateway on loopback,
each example with a short deadline. Examples are derandomized (a fixed seed), so CI runs
the same budget every time: the counts are in ``max_examples`` below.

Network rule: generated hosts come from a fixed list that never needs DNS (loopback
literals, ``localhost`` from /etc/hosts, and forms rejected before any lookup); as a
second guard, name lookups made by the gate's Python code answer "no such name" for
anything but those.
"""

from __future__ import annotations

import json
import math
import socket
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entrypoint.commands.mesh import build_checks
from entrypoint.errors import UsageError
from entrypoint.targets import KINDS
from tests.support.bounds import FAST_BACKOFF
from tests.support.cli import run_gate
from tests.support.processes import Processes
from tests.support.sockets import closed_port

ACCEPTED = {0, 69}  # ready, or not ready by the deadline (the judgement said no)
REJECTED = 64
# deadline=None: no per-example time limit (Hypothesis's 200 ms default would judge the
# machine's load, not the gate). Each example is bounded by the gate's own 0.3 s --timeout
# (see wait() below), and pytest-timeout is the backstop.
PROFILE = settings(
    derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
SAFE_HOSTS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "::1",
    "",
    "bad host",
    "a@b",
    "[::1",
    "host/path",
    "\x00",
    "127.0.0.1:5555",
    "-",
    "x" * 300,
]
_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host not in ("127.0.0.1", "::1", "localhost", None):
        raise socket.gaierror(socket.EAI_NONAME, "not looked up by the property tests")
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(scope="module")
def sim_port() -> Iterator[int]:
    """One simulated gateway for the module's examples (Hypothesis takes no per-test
    fixture), stopped after the module."""
    with Processes() as started:
        _sim, port = started.sim()
        yield port


@pytest.fixture(scope="module")
def refused_port() -> Iterator[int]:
    """Held bound, not listening, for the module: nothing else can take it meanwhile."""
    with closed_port() as port:
        yield port


def run_main(argv: list[str], environ: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """``mt5-gate ARGV`` in-process, names looked up on loopback only: (exit code, its
    stderr lines)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", _loopback_only)
        ran = run_gate(argv, environ, in_process=True, log="text")
    return ran.code, ran.stderr.splitlines()


def check_outcome(code: int, lines: list[str]) -> None:
    assert code in ACCEPTED | {REJECTED}, lines  # 70 would be a crash, 78 not an input's
    assert not any(line.startswith("Traceback") for line in lines)
    for line in lines:
        json.loads(line)  # every line is a JSON event
    if code == REJECTED:
        assert len(lines) == 1, lines
        assert json.loads(lines[0])["event"] == "gate.error"


def wait(port: int, *extra: str) -> list[str]:
    # A 0.3 s deadline bounds every example, whatever the fuzzed option says (flags given
    # later win, so only the option under test is fuzzed, never the deadline itself,
    # except in the test that fuzzes --timeout against a gateway that answers at once).
    return ["wait", "--host", "127.0.0.1", "--port", str(port), *FAST_BACKOFF, *extra]


numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(
        [
            "",
            " ",
            "1e309",
            "-0",
            "0",
            "nan",
            "inf",
            "0x10",
            "1_000",
            "½",
            "٣",
            "1.5s",
            "10 ",
            "+3",
            "1e-320",
        ]
    ),
    st.text(max_size=20),
)


@settings(PROFILE, max_examples=150)
@given(
    option=st.sampled_from(
        ["--connect-timeout", "--reply-timeout", "--backoff-initial", "--backoff-max"]
    ),
    value=numbers,
)
def test_numeric_flags(sim_port: int, option: str, value: str) -> None:
    code, lines = run_main(wait(sim_port, option, value, "--timeout", "0.3"))
    check_outcome(code, lines)


@settings(PROFILE, max_examples=100)
@given(value=numbers, as_variable=st.booleans())
def test_the_deadline_itself(sim_port: int, value: str, as_variable: bool) -> None:
    """--timeout / GATE_TIMEOUT fuzzed against a gateway that answers at once: any value
    accepted must end promptly (ready, or 69 if the deadline is already past)."""
    argv = wait(sim_port) if as_variable else wait(sim_port, "--timeout", value)
    code, lines = run_main(argv, {"GATE_TIMEOUT": value} if as_variable else None)
    check_outcome(code, lines)


@settings(PROFILE, max_examples=100)
@given(
    option=st.sampled_from(
        ["--port", "--host", "--expect-status", "--log-format", "--log-level", "--status-request"]
    ),
    value=st.one_of(st.text(max_size=40), st.sampled_from(SAFE_HOSTS)),
)
def test_text_flags(sim_port: int, refused_port: int, option: str, value: str) -> None:
    if option == "--port":  # a fuzzed port must not reach anything but refused/loopback
        argv = ["wait", "--host", "127.0.0.1", "--timeout", "0.3", "--port", value]
    elif option == "--host":
        if value not in SAFE_HOSTS:
            value = "".join(ch for ch in value if ch in "/@ ?#") + "/"  # rejected forms only
        argv = ["wait", "--port", str(refused_port), "--timeout", "0.3", "--host", value]
    else:
        argv = wait(sim_port, "--timeout", "0.3", option, value)
    code, lines = run_main(argv)
    check_outcome(code, lines)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=10)
    | st.sampled_from(
        ["$now", "$now_epoch", "$uuid", "$$now", "$file:/nonexistent", "$file:", "$", "$nope"]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(PROFILE, max_examples=120)
@given(
    template=st.one_of(
        st.dictionaries(st.text(max_size=8), json_values, max_size=4).map(json.dumps),
        json_values.map(json.dumps),
        st.text(max_size=40),
    ),
    which=st.sampled_from(["--ping-request", "--status-request"]),
)
def test_request_templates(sim_port: int, template: str, which: str) -> None:
    code, lines = run_main(wait(sim_port, "--timeout", "0.3", which, template))
    check_outcome(code, lines)


expression_tokens = st.sampled_from(
    [
        "status",
        "ok",
        "data.status",
        "@",
        "==",
        "!=",
        "&&",
        "||",
        "!",
        "(",
        ")",
        "[",
        "]",
        "'OK'",
        "`true`",
        "`null`",
        "upper(",
        "lower(",
        "contains(",
        "keys(@)",
        "length(@)",
        ",",
        ".",
        "*",
        "[?",
        "`1`",
        "|",
        "&",
        "$",
        "'",
        '"',
        "type(@)",
        "to_number(",
        "abs(",
        "sort_by(",
        "max_by(",
        "{a: status}",
        "[0]",
        "[-1]",
        "[::2]",
    ]
)


@settings(PROFILE, max_examples=150)
@given(
    expression=st.one_of(
        st.lists(expression_tokens, min_size=1, max_size=8).map(" ".join), st.text(max_size=30)
    )
)
def test_ready_when_expressions(sim_port: int, expression: str) -> None:
    code, lines = run_main(wait(sim_port, "--timeout", "0.3", "--ready-when", expression))
    check_outcome(code, lines)


url_part = st.text(alphabet=string.printable + "éß\u202e\x00", max_size=12)


@st.composite
def also_urls(draw: Any) -> str:
    scheme = draw(
        st.sampled_from(
            [
                "http",
                "https",
                "redis",
                "rediss",
                "postgresql",
                "postgres",
                "tcp",
                "zmq+req",
                "zmq+sub",
                "ftp",
                "",
            ]
        )
    )
    user = draw(st.sampled_from(["", "u@", "u:p@", ":p@", "u:p:q@", "@"]))
    host = draw(st.sampled_from(SAFE_HOSTS))
    port = draw(
        st.one_of(
            st.just(""),
            st.integers(-1, 70000).map(lambda p: f":{p}"),
            url_part.map(lambda p: f":{p}"),
        )
    )
    path = draw(st.one_of(st.just(""), url_part.map(lambda p: "/" + p)))
    options = draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    [
                        "socket_timeout",
                        "db",
                        "sslmode",
                        "connect_timeout",
                        "ssl",
                        "decode_responses",
                        "health_check_interval",
                        "foo",
                        "",
                    ]
                ),
                url_part,
            ),
            max_size=3,
        )
    )
    query = "&".join(f"{k}={v}" for k, v in options)
    return f"{scheme}://{user}{host}{port}{path}" + (f"?{query}" if query else "")


@settings(PROFILE, max_examples=150)
@given(url=also_urls())
def test_also_urls(sim_port: int, url: str) -> None:
    code, lines = run_main(wait(sim_port, "--timeout", "0.3", "--also", url))
    check_outcome(code, lines)


mesh_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(SAFE_HOSTS),
    st.lists(st.integers(), max_size=2),
)


@settings(PROFILE, max_examples=300)
@given(
    document=st.fixed_dictionaries(
        {},
        optional={
            "include_defaults": mesh_values,
            "timeout": mesh_values,
            "pub_message_within": mesh_values,
            "check": st.one_of(
                mesh_values,
                st.lists(
                    st.one_of(
                        mesh_values,
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "kind": st.one_of(st.sampled_from(list(KINDS)), mesh_values),
                                "target": mesh_values,
                                "timeout": mesh_values,
                                "critical": mesh_values,
                                "phase": mesh_values,
                                "name": mesh_values,
                                "extra": mesh_values,
                            },
                        ),
                    ),
                    max_size=3,
                ),
            ),
        },
    )
)
def test_mesh_files(document: dict[str, Any]) -> None:
    """A mesh file's structure, every type in every place: a one-line usage error, or
    checks with a finite positive timeout. (Built, not run: a fuzzed target must not send
    traffic anywhere; running checks is the mesh tests' job.)"""
    problem, checks = None, []
    try:
        checks = build_checks(None, {}, document, "mesh.toml")
    except UsageError as exc:
        problem = exc.message
    assert problem is None or "\n" not in problem
    for check in checks:
        assert 0 < check.timeout_s < math.inf
        assert isinstance(check.critical, bool)
