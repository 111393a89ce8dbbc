"""Files the user names, and the standard streams: read or written without ever blocking
the gate or changing its exit code.

``open()`` on a FIFO waits for a writer, forever, before any deadline has started and
without a line said; a character device (``/dev/zero``, a terminal) never ends or blocks
too. So a named file is opened non-blocking and must be a regular file (``fstat`` on what
was opened, not a ``stat`` of the path before: nothing can be swapped in between); a
symbolic link to one is fine (Kubernetes mounts secrets through links).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable

from entrypoint.errors import OutputFailed

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_regular_file(path: str, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the regular file at ``path`` (one more than allowed,
    so that the caller can say it is too large). OSError, with a ``strerror`` fit for a
    message, when it cannot be read or is not a regular file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise OSError(errno.EINVAL, f"{kind}, not a regular file")
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, left)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def forget_standard_stream(name: str, failed: object) -> None:
    """After a write to ``sys.stdout`` or ``sys.stderr`` (``name``) failed: put a /dev/null
    writer in its place. The failed stream keeps what it could not write in its buffer,
    and Python's last flush at exit, failing again, would turn the gate's exit code into
    120: the code must say what the gate found, not whether anyone could read it. Only
    the Python object is replaced, never the file descriptor, which a runner the gate
    execs still inherits as it was."""
    if getattr(sys, name, None) is failed:
        setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115 - for life


def write_report(who: str, write: Callable[[], object]) -> bool:
    """Run ``write`` (a command's report to stdout) and flush it. False when the reader
    left (a closed pipe: ``| head`` has what it wanted), OutputFailed (exit 74) when the
    report could not be written (a full disk); either way stdout is forgotten, so that
    Python's final flush cannot fail again and change the exit code."""
    stream = sys.stdout
    try:
        write()
        stream.flush()
    except BrokenPipeError:
        forget_standard_stream("stdout", stream)
        return False
    except OSError as exc:
        forget_standard_stream("stdout", stream)
        reason = exc.strerror or type(exc).__name__
        raise OutputFailed(f"mt5-gate {who}: cannot write the report to stdout: {reason}") from None
    return True


def tell_stderr(line: str) -> None:
    """One line for a person on stderr, best effort: nobody may be reading it."""
    stream = sys.stderr
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        forget_standard_stream("stderr", stream)
