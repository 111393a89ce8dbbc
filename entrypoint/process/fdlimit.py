"""The file-descriptor limit: enough for the gate's sockets, and the runner's own back.

Too few descriptors make libzmq abort (exit 134, "Too many open files
(src/epoll.cpp:38)", a line that is not JSON) or a socket call fail mid-wait. So before
any socket exists the gate raises its soft RLIMIT_NOFILE (no privilege needed, up to the
hard limit), ``wait`` refuses plainly (exit 70, one line naming ``ulimit -n``) when even
the hard limit is below what its configuration needs, and the runner gets the soft limit
the gate was started with (``restore``, just before the exec).

What the gate needs was measured with ``ulimit -n N`` (the smallest N that still execs)
and by sampling /proc/PID/fd against ``mt5-gate sim``: ``wait`` alone 13 (fds 0-2, the
ZeroMQ context's epoll and eventfd, a REQ socket and its monitor pair, the connection);
an ``--also`` tcp/http/redis/postgres target 1-4 more; a ZeroMQ ``--also`` target (its
own context and monitor) 9-10 more: 22-23 with one, 30 with one of each. A two-socket
transport (push-pull, req-pull) adds a reply socket, its monitor pair and its connection:
``wait --bridge dwx`` needs 17 where ``req`` needs 13.
"""

from __future__ import annotations

import resource

from entrypoint.errors import EXIT_SOFTWARE, GateError

BASE_FDS = 16  # `wait` alone: 13 measured, and 3 spare
PER_ZMQ_TARGET = 10  # zmq+req:// or zmq+sub://: 9-10 measured
PER_OTHER_TARGET = 4  # tcp, http(s), redis(s), postgres(ql): 1-4 measured
PER_REPLY_SOCKET = 6  # a two-socket transport's second socket: 4 measured, and 2 spare
# How far the soft limit is raised when it is low: plenty for any command (mesh runs all
# its checks at once), and never more than the hard limit allows.
COMFORTABLE_FDS = 1024

_found: tuple[int, int] | None = None  # the limits the gate started with, once raised


class FdLimitTooLow(GateError):
    """RLIMIT_NOFILE's hard limit is below what the configuration needs: the
    environment's doing, not a bug (no traceback, no "report this")."""

    exit_code = EXIT_SOFTWARE


def needed(zmq_targets: int, other_targets: int, reply_sockets: int = 0) -> int:
    """The descriptors ``wait`` needs with this many ZeroMQ and other ``--also`` targets,
    and this many bridges spoken to over a two-socket transport (the gateway included)."""
    return (
        BASE_FDS
        + PER_ZMQ_TARGET * zmq_targets
        + PER_OTHER_TARGET * other_targets
        + PER_REPLY_SOCKET * reply_sockets
    )


def raise_soft_limit() -> None:
    """A soft limit below COMFORTABLE_FDS is raised towards it, as far as the hard limit
    allows; ``restore`` puts it back."""
    global _found  # noqa: PLW0603 - one value per process, read back before the exec
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= COMFORTABLE_FDS:
        return
    target = COMFORTABLE_FDS if hard == resource.RLIM_INFINITY else min(hard, COMFORTABLE_FDS)
    if target <= soft:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError):
        return  # `require` says so if it matters
    _found = (soft, hard)


def require(count: int) -> None:
    """FdLimitTooLow unless ``count`` descriptors are allowed (after ``raise_soft_limit``)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= count:
        return
    shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    started = _found[0] if _found else soft
    raise FdLimitTooLow(
        f"the file-descriptor limit is too low: mt5-gate needs {count} open files with "
        f"this configuration, but `ulimit -n` is {started} and its hard limit ({shown}) "
        "does not let the gate raise it",
        hint=f"raise the limit to {count} or more where the container starts: "
        f"`ulimit -n {count}` (or more) before mt5-gate, or docker run --ulimit "
        "nofile=1024:1024 (compose: ulimits: nofile: 1024)",
    )


def restore() -> None:
    """Give the soft limit back as the gate found it: the runner's limits are as if there
    were no gate."""
    if _found is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, _found)
