"""The waiting gate's state file: what ``wait`` is waiting for, told to ``health``.

On the two-socket transports ``health`` is passive (it must not take the strategy's
replies), so while the gate still waits for a bridge that answers "no broker", a passive
check would call the container healthy and Compose would release the services that depend
on it. So the waiting gate keeps one small file (``StateFile``) and ``health`` reads it
first (``still_waiting``).

Trust comes from the kernel, not from the content: the gate holds an exclusive ``flock``
on the file for the whole wait, on a close-on-exec descriptor, so the lock disappears the
moment the gate exits, is SIGKILLed or execs the runner. A reader believes only a file
whose lock it cannot take (a live gate holds it) and whose ``target`` is its own gateway;
anything else is stale or another gate's, and ignored.

Where: ``/dev/shm`` (a tmpfs in nearly every container, writable even with a read-only
root), one ``mt5-gate-<pid>-<random>.state`` per gate, or the path ``GATE_STATE_FILE``
names. The file is created under a name readers do not look at, locked, filled and only
then renamed into place, so no reader ever sees it empty or unlocked.

Updates overwrite the whole content in place (one ``pwrite`` at offset 0, padded with
spaces to the longest content so far, so nothing of an older one is left after it). A
reader may still race a write and read a mix of two; such a mix almost never parses, and
the reader reads again. One that does parse cannot claim "ready" early, because every
field only moves forward (a target never goes from ready back to waiting), and ``seq``,
written first and again last as ``end``, differs when the read straddled two writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Any

from entrypoint.log import events
from entrypoint.log.events import emit
from entrypoint.log.logs import scrub

# A shared directory, but nothing here trusts a name: files are created O_EXCL|O_NOFOLLOW
# under a random name, and a reader believes only a file a live gate holds locked.
STATE_DIR = "/dev/shm"  # noqa: S108
PREFIX, SUFFIX = "mt5-gate-", ".state"
STARTING, WAITING, READY = "starting", "waiting", "ready"
# Bounds what a reader reads and what an error may take of it.
MAX_BYTES = 16384
ERROR_LIMIT = 300
READS = 3  # a reader's tries at a content that parses (see the module's docstring)


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


class StateFile:
    """The writer, kept by ``wait``: ``start``, then ``failed``/``ready`` per target (from
    any thread), ``all_ready``, and ``close`` (the file removed) before the exec and at
    exit. A file that cannot be created is one warning, and every call is then a no-op:
    the wait never depends on it."""

    def __init__(
        self,
        path: str | None,
        target: str,
        transport: str,
        bridge: str,
        others: list[str],
        *,
        keep: bool = True,
    ) -> None:
        self.keep = keep
        self.path = path or os.path.join(
            STATE_DIR, f"{PREFIX}{os.getpid()}-{os.urandom(4).hex()}{SUFFIX}"
        )
        self._lock = threading.Lock()  # --also targets report from their own threads
        self._fd: int | None = None
        self._written = 0
        now = _utc(time.time())
        self._state: dict[str, Any] = {
            "seq": 0,
            "target": target,
            "transport": transport,
            "bridge": bridge,
            "pid": os.getpid(),
            "phase": STARTING,
            "targets": [
                {
                    "name": name,
                    "ready": False,
                    "reason": None,
                    "broker_state": None,
                    "attempt": 0,
                    "error": None,
                    "since": now,
                }
                for name in (target, *others)
            ],
            "end": 0,
        }

    @classmethod
    def unkept(cls) -> StateFile:
        """One that writes nothing (``run_wait`` called without a state file)."""
        return cls(os.devnull, "", "", "", [], keep=False)

    def __enter__(self) -> StateFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self, log: Any) -> None:
        """Create the file, locked and filled; say once (a warning) when it cannot be."""
        if not self.keep:
            return
        try:
            self._create()
        except OSError as exc:
            emit(
                log,
                events.STATE_UNAVAILABLE,
                path=self.path,
                error=f"{exc.strerror or exc}: health cannot tell that the gate still "
                "waits, so it checks the gateway as usual",
            )

    def _create(self) -> None:
        directory = os.path.dirname(self.path) or "."
        if directory == STATE_DIR:
            _sweep_stale()
        temporary = f"{self.path}.{os.getpid()}.new"  # a name no reader looks at
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644
        )
        try:
            import fcntl  # noqa: PLC0415 - health imports this module, and needs no fcntl
            # unless a state file is there

            fcntl.flock(fd, fcntl.LOCK_EX)  # before it has its name: never seen unlocked
            with self._lock:
                self._fd = fd
                self._write()
            os.rename(temporary, self.path)
        except OSError:
            self._fd = None
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def failed(
        self, name: str, attempt: int, reason: str, error: str, broker_state: str | None
    ) -> None:
        """One failed attempt of ``name`` (the gateway's target or an ``--also`` URL)."""
        with self._lock:
            entry = self._entry(name)
            if entry is None:
                return
            if entry["reason"] != reason or entry["broker_state"] != broker_state:
                entry["since"] = _utc(time.time())  # when this reason started
            entry.update(
                reason=reason,
                broker_state=broker_state,
                attempt=attempt,
                error=scrub(error)[:ERROR_LIMIT],
            )
            if self._state["phase"] == STARTING:
                self._state["phase"] = WAITING
            self._write()

    def ready(self, name: str) -> None:
        with self._lock:
            entry = self._entry(name)
            if entry is not None:
                entry.update(ready=True, since=_utc(time.time()))
                self._write()

    def all_ready(self) -> None:
        with self._lock:
            self._state["phase"] = READY
            self._write()

    def close(self) -> None:
        """Remove the file and drop the lock (before the exec, and at exit)."""
        with self._lock:
            if self._fd is None:
                return
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            os.close(self._fd)
            self._fd = None

    def _entry(self, name: str) -> dict[str, Any] | None:
        if self._fd is None:
            return None
        return next((e for e in self._state["targets"] if e["name"] == name), None)

    def _write(self) -> None:
        """The whole content at offset 0, padded over what a longer one left (the caller
        holds the lock). A failed write is ignored: the file is a courtesy to health."""
        if self._fd is None:
            return
        self._state["seq"] = self._state["end"] = self._state["seq"] + 1
        data = json.dumps(self._state, separators=(",", ":")).encode()
        self._written = max(self._written, len(data))
        with contextlib.suppress(OSError):
            os.pwrite(self._fd, data.ljust(self._written), 0)


def _sweep_stale() -> None:
    """Remove the files of gates that are gone (SIGKILLed: nobody holds their lock), so
    they do not pile up in a container's /dev/shm across restarts."""
    import fcntl  # noqa: PLC0415 - see StateFile._create

    for name in _state_names():
        path = os.path.join(STATE_DIR, name)
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: a live gate's
                os.unlink(path)
            finally:
                os.close(fd)


def _state_names() -> list[str]:
    try:
        with os.scandir(STATE_DIR) as found:
            return [
                entry.name
                for entry in found
                if entry.name.startswith(PREFIX) and entry.name.endswith(SUFFIX)
            ]
    except OSError:
        return []


# --- the reader: health --------------------------------------------------------------------


def still_waiting(target: str, path: str | None) -> str | None:
    """The line ``health`` prints when a live gate waiting for ``target`` says it still
    waits; None otherwise (no such file, a stale one, another gate's, or the gate is
    ready), and health then checks the gateway as it always did."""
    paths = [path] if path else [os.path.join(STATE_DIR, n) for n in _state_names()]
    for candidate in paths:
        state = _read_held(candidate)
        if state is None:
            continue
        if state is _UNREADABLE:
            if path:  # our own file (named by GATE_STATE_FILE): fail closed
                return (
                    f"unhealthy: {target} the gate holds its state file {path} but it "
                    "cannot be read"
                )
            continue  # another gate's, perhaps: nothing says it is about this target
        if state.get("target") == target:
            line = _waiting_line(state)
            if line is not None:
                return line
    return None


_UNREADABLE: dict[str, Any] = {}


def _read_held(path: str) -> dict[str, Any] | None:
    """The file's content when a live gate holds it, ``_UNREADABLE`` when it does but the
    content never parsed, None when nobody holds it (or it is not there)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        import fcntl  # noqa: PLC0415 - only when a state file is there

        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # the gate holds it: alive and waiting
        except OSError:
            return None
        else:
            return None  # nobody holds it: its gate exited, was killed or exec'd
        for _try in range(READS):
            try:
                state = json.loads(os.pread(fd, MAX_BYTES, 0))
            except (ValueError, OSError):
                continue
            if isinstance(state, dict) and state.get("seq") == state.get("end"):
                return state
        return _UNREADABLE
    finally:
        os.close(fd)


def _waiting_line(state: dict[str, Any]) -> str | None:
    """What the gate waits for, in its own words; None when it waits for nothing."""
    gate = str(state.get("target"))
    entries = [e for e in state.get("targets") or () if isinstance(e, dict)]
    waiting = [e for e in entries if not e.get("ready")]
    if not waiting and state.get("phase") == READY:
        return None
    if not waiting:  # every target ready, not yet all told: still before the exec
        return f"unhealthy: {gate} the gate is still waiting (phase {state.get('phase')})"
    first = waiting[0]
    what = "" if first.get("name") == gate else f" for {first.get('name')}"
    if first.get("reason") is None:
        return (
            f"unhealthy: {gate} the gate is still waiting{what} (starting: no attempt "
            "has finished yet)"
        )
    since = str(first.get("since", ""))[11:]  # the time of day of an ISO UTC stamp
    broker = f", broker_state {first['broker_state']}" if first.get("broker_state") else ""
    return (
        f"unhealthy: {gate} the gate is still waiting{what} (attempt "
        f"{first.get('attempt')}, {first.get('reason')} since {since}{broker}): "
        f"{first.get('error')}"
    )
