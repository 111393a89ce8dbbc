"""The one way the tests run ``mt5-gate`` to completion: ``run_gate(args, env, ...)``.

By default a subprocess, ``python -m entrypoint ARGS`` in the repository, as a container
runs it. Its switches cover what the tests need of it, not other ways to run it:

* ``in_process=True``: through ``cli.main(argv, environ)`` in this process (no fork, no
  interpreter start) for what neither waits nor execs (usage errors, help, the property
  tests' thousands of examples); ``env`` is then the whole environment the gate is given.
* ``tty="stdout"`` or ``"stderr"``: that stream on a pseudo-terminal (colour), the other
  one discarded.
* ``stdin=b"..."``: what the gate reads (``explain``).
* ``command=[...]``: what runs the gate when it is not ``python -m entrypoint``: the gate
  with an injected failure, or behind a shell that sets limits first.
* ``**popen``: passed on to ``subprocess.run``; ``stderr=subprocess.STDOUT`` interleaves
  the log into stdout as ``docker logs 2>&1`` shows it.

Every run is a ``Ran``. A raw traceback fails the test, and so does the word "Traceback"
anywhere in the output unless ``internal_error=True``: exit 70 with the traceback inside
its one JSON ``gate.error`` is the documented report of an internal error. With
``log="json"`` (the default) every stderr line must be a JSON object: those are
``events``. A process the test must act on while it runs is started with the `gate`
fixture instead (tests/support/processes.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tests.support.bounds import EXIT_S
from tests.support.helpers import GATE, REPO, base_env, parse_lines


@dataclass(frozen=True)
class Ran:
    """A finished run: exit code, stdout, stderr, the JSON log events (with
    ``log="json"``) and the seconds it took, start-up included."""

    code: int
    stdout: str
    stderr: str
    events: list[dict[str, Any]]
    took: float


def run_gate(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = EXIT_S,
    stdin: bytes | None = None,
    log: Literal["json", "text"] = "json",
    tty: Literal["stdout", "stderr"] | None = None,
    in_process: bool = False,
    command: Sequence[str] = GATE,
    internal_error: bool = False,
    **popen: Any,
) -> Ran:
    """Run ``mt5-gate ARGS`` to its exit (see the module's doc). ``env``: the gate's whole
    environment (default ``base_env()``; in-process, nothing but ``GATE_LOG_FORMAT=json``);
    ``timeout``: the hang guard of a subprocess."""
    if tty == "stderr" and log == "json":
        raise ValueError("a log on a terminal is console text: pass log='text'")
    started = time.monotonic()
    if in_process:
        if tty or stdin is not None or popen or command is not GATE:
            raise ValueError("in-process runs take only args and env")
        code, stdout, stderr = _in_process(args, env or {})
    elif tty:
        code, stdout, stderr = _on_a_terminal(
            [*command, *args], dict(env or base_env()), tty, stdin, timeout
        )
    else:
        code, stdout, stderr = _subprocess(
            [*command, *args], dict(env or base_env()), stdin, timeout, popen
        )
    ran = Ran(
        code,
        stdout,
        stderr,
        parse_lines(stderr) if log == "json" else [],
        time.monotonic() - started,
    )
    output = stdout + stderr
    if internal_error:
        assert not any(line.startswith("Traceback") for line in output.splitlines()), output
    else:
        assert "Traceback" not in output, output
    return ran


def _in_process(args: Sequence[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    from entrypoint.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args), {"GATE_LOG_FORMAT": "json", **env})
    return code, out.getvalue(), err.getvalue()


def _subprocess(
    argv: list[str], env: dict[str, str], stdin: bytes | None, timeout: float, popen: dict[str, Any]
) -> tuple[int, str, str]:
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    if stdin is None:
        streams["stdin"] = subprocess.DEVNULL
    done = subprocess.run(
        argv, env=env, cwd=REPO, input=stdin, timeout=timeout, check=False, **streams
    )
    return (
        done.returncode,
        (done.stdout or b"").decode(),
        (done.stderr or b"").decode("utf-8", "replace"),
    )


def _on_a_terminal(
    argv: list[str], env: dict[str, str], stream: str, stdin: bytes | None, timeout: float
) -> tuple[int, str, str]:
    """``argv`` with ``stream`` on a pseudo-terminal, read until the child closes it."""
    import pty

    leader, follower = pty.openpty()
    on_tty = stream == "stdout"
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=follower if on_tty else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if on_tty else follower,
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        if proc.stdin is not None:
            proc.stdin.write(stdin or b"")
            proc.stdin.close()
        while time.monotonic() < deadline:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed its end of the terminal
                break
            if not chunk:
                break
            output += chunk
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = output.decode("utf-8", "replace")
    return (code, text, "") if on_tty else (code, "", text)
