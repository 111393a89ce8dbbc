"""The hand-off: resolve the runner up front, then replace this process with it.

The runner inherits our PID, argv and environment, so it receives the container's
signals directly. Before exec we undo what Python changed: SIGPIPE and SIGXFSZ are
ignored by CPython and ignored dispositions survive exec; our own handlers go back to
default; the signal mask is emptied; buffered output is flushed; a file-descriptor soft
limit the gate raised for itself (``fdlimit``) goes back to what it was.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import sys
from collections.abc import Mapping, Sequence

from entrypoint.errors import CommandNotExecutable, CommandNotFound
from entrypoint.process import failclosed, fdlimit
from entrypoint.process.signals import raise_if_pending

_RESET_SIGNALS = (
    "SIGPIPE",
    "SIGXFSZ",
    "SIGINT",
    "SIGTERM",
    "SIGHUP",
    "SIGQUIT",
    "SIGUSR1",
    "SIGUSR2",
    "SIGCHLD",
)


def resolve_command(command: Sequence[str], environ: Mapping[str, str]) -> str:
    """The path exec will run, found the way a shell would; raises 126/127 errors early."""
    program = command[0]
    if not program:
        raise CommandNotFound(
            "the runner command is empty",
            hint="put the runner after `--`: mt5-gate wait -- python run.py",
        )
    if "/" in program:
        return _check_executable(program, program)
    path = environ.get("PATH", os.defpath)
    found = shutil.which(program, path=path)
    if found is None:
        # which() skips non-executable files; say so instead of "not found" when one exists.
        for directory in path.split(os.pathsep):
            candidate = os.path.join(directory or ".", program)
            if os.path.isfile(candidate):
                return _check_executable(candidate, program)
        raise CommandNotFound(
            f"runner {program!r} not found on PATH",
            hint=f"check the image installs {program!r} and PATH={path}",
        )
    return _check_executable(found, program)


def _check_executable(path: str, program: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CommandNotFound(
            f"runner {program!r} does not exist", hint="check the path in the container's CMD"
        ) from None
    except OSError as exc:
        raise CommandNotExecutable(
            f"runner {program!r} cannot be used: {exc.strerror}",
            hint="check the file's permissions",
        ) from None
    if stat.S_ISDIR(mode):
        raise CommandNotExecutable(
            f"runner {program!r} is a directory", hint="name the program file, not its directory"
        )
    if not os.access(path, os.X_OK):
        raise CommandNotExecutable(
            f"runner {program!r} is not executable",
            hint=f"chmod +x {path}, or run it through its interpreter",
        )
    return path


def exec_runner(path: str, argv: Sequence[str]) -> None:
    """Replace this process with ``argv`` (``path`` is its resolved program). Never returns
    unless exec itself fails, which raises CommandNotExecutable.

    Last gate before the exec: any unexpected failure seen off the main flow (a thread,
    a callback; see ``failclosed``) is raised here instead, and the runner never starts."""
    failclosed.raise_if_any()
    raise_if_pending()  # a stop requested (and swallowed) just before: do not start
    fdlimit.restore()  # the runner's limits are as if there were no gate
    for name in _RESET_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed stream must not stop exec
            stream.flush()
    try:
        os.execv(path, list(argv))  # noqa: S606 - exec without a shell is the point
    except OSError as exc:
        raise CommandNotExecutable(
            f"cannot execute runner {argv[0]!r}: {exc.strerror}",
            hint="check the file is a program for this platform (a script needs a #! line)",
        ) from None
