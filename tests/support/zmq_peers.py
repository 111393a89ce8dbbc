"""ZeroMQ REP peers on loopback that are not libzmq 4, so the tests can show that the gate's
REQ client (pyzmq / libzmq 4.3) interoperates with older and foreign implementations:

* ``zmtp1_rep_server``: a pure-Python peer speaking ZMTP 1.0, the libzmq 2.x wire format,
  which libzmq 4 still falls back to when the peer's first byte is not 0xFF.
* ``jeromq_rep_server``: JeroMQ 0.3.6 (Debian's ``libjeromq-java``), a pure-Java ZeroMQ
  speaking ZMTP 2.0, running ``tests/support/java/JeroRep.java`` under a headless JDK.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from tests.support.bounds import JVM_BOUND_S
from tests.support.helpers import poll_until, skip_or_fail

# --- ZMTP 1.0 ---------------------------------------------------------------------------

MORE = 0x01
# What libzmq 2.x sends first on every connection: a frame of length 1 (just the flags
# octet), flags 0, empty body, i.e. an anonymous identity.
ZMTP1_EMPTY_IDENTITY = b"\x01\x00"
# A bound on one frame, so a confused client cannot make the peer buffer without limit.
MAX_FRAME = 16 * 1024 * 1024
# How often blocked threads look at the stop flag: this bounds the time the exit takes.
_TICK = 0.05


def zmtp1_frame(body: bytes, more: bool = False) -> bytes:
    """One ZMTP 1.0 frame: length (flags octet + body), flags, body. The length is one
    octet below 255, else 0xFF and 8 octets big-endian."""
    size = len(body) + 1
    head = bytes([size]) if size < 0xFF else b"\xff" + struct.pack(">Q", size)
    return head + bytes([MORE if more else 0]) + body


class _Closed(Exception):
    """The connection ended (EOF, a protocol error, or the server is stopping)."""


@dataclass
class Peer:
    """What a ``zmtp1_rep_server`` saw. Its threads append and count under ``_lock``."""

    port: int
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _conns: list[socket.socket] = field(default_factory=list, repr=False)

    def close_connections(self) -> None:
        """Close every open connection from the server side (the listener stays up), to
        show what the client does when its peer goes away."""
        # Only shut down (a FIN, as a peer that closes cleanly sends): each connection's
        # thread then reads end of file and closes its own socket, so no thread ever
        # reads from a descriptor that another thread closed under it.
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class _Reader:
    """Buffered reads from a socket with a timeout, giving up once ``stop`` is set."""

    def __init__(self, conn: socket.socket, stop: threading.Event) -> None:
        self.conn = conn
        self.stop = stop
        self.buf = bytearray()

    def exactly(self, count: int) -> bytes:
        while len(self.buf) < count:
            if self.stop.is_set():
                raise _Closed
            try:
                chunk = self.conn.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise _Closed from exc
            if not chunk:
                raise _Closed
            self.buf += chunk
        data = bytes(self.buf[:count])
        del self.buf[:count]
        return data

    def frame(self) -> tuple[bytes, bool]:
        """One ZMTP 1.0 frame: (body, more)."""
        size = self.exactly(1)[0]
        if size == 0xFF:
            size = struct.unpack(">Q", self.exactly(8))[0]
        if size == 0 or size > MAX_FRAME:  # 0 cannot even hold the flags octet
            raise _Closed
        flags = self.exactly(1)[0]
        return self.exactly(size - 1), bool(flags & MORE)

    def message(self) -> list[bytes]:
        frames = []
        while True:
            body, more = self.frame()
            frames.append(body)
            if not more:
                return frames


class _Zmtp1Rep:
    """The listener and one thread per connection behind ``zmtp1_rep_server``."""

    def __init__(self, reply: Callable[[bytes], bytes | None], speaks_first: bool) -> None:
        self.reply = reply
        self.speaks_first = speaks_first
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(_TICK)
        self.peer = Peer(port=int(self.listener.getsockname()[1]))
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def close(self) -> None:
        self.stop.set()
        self.acceptor.join(5)
        self.listener.close()
        self.peer.close_connections()
        for thread in self.threads:  # each notices the stop flag within _TICK
            thread.join(5)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            with self.peer._lock:
                self.peer.connections += 1
                self.peer._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(_TICK)
        try:
            self._converse(conn, _Reader(conn, self.stop))
        except (_Closed, OSError):
            pass  # the client left, spoke garbage, or we are stopping
        finally:
            with self.peer._lock:
                self.peer._conns.remove(conn)
                conn.close()

    def _converse(self, conn: socket.socket, reader: _Reader) -> None:
        # libzmq 2.x speaks first; a libzmq 4 client sends its 10-octet signature
        # regardless, and only falls back to 1.0 because our first octet is not 0xFF.
        # The client's identity: libzmq 4's signature FF 00*7 01 7F reads as a 1.0 frame
        # of length 1 and flags 0x7F; 2.x sends 01 00. Neither matters to a REP.
        if self.speaks_first:
            conn.sendall(ZMTP1_EMPTY_IDENTITY)
            reader.frame()
        else:  # an implementation that waits for the client's greeting before its own
            reader.frame()
            conn.sendall(ZMTP1_EMPTY_IDENTITY)
        while True:
            # A REQ's envelope is an empty delimiter frame, then the body frame(s).
            body = reader.message()[-1]
            with self.peer._lock:
                self.peer.requests.append(body)
            answer = self.reply(body)
            if answer is not None:
                # Reads tick at _TICK to notice the stop flag; a send may need longer.
                conn.settimeout(5)
                conn.sendall(zmtp1_frame(b"", more=True) + zmtp1_frame(answer))
                conn.settimeout(_TICK)


@contextmanager
def zmtp1_rep_server(
    reply: Callable[[bytes], bytes | None], speaks_first: bool = True
) -> Iterator[Peer]:
    """A ZMTP 1.0 (libzmq 2.x) REP peer on 127.0.0.1 and an OS-chosen port, one thread per
    connection. ``reply(body)`` gets the last frame of each request and returns the answer
    body, or None to stay silent on that connection. ``speaks_first=False``: it sends its
    greeting only after reading the client's, as some ZeroMQ implementations do."""
    server = _Zmtp1Rep(reply, speaks_first)
    try:
        yield server.peer
    finally:
        server.close()


# --- JeroMQ -----------------------------------------------------------------------------

JAVA_SOURCE = Path(__file__).resolve().parent / "java" / "JeroRep.java"
_INSTALL = "apt-get install -y libjeromq-java default-jdk-headless"


@dataclass
class JeroPeer:
    """A running JeroRep: its ports, when it had bound (epoch s) and what it received."""

    port: int
    pub_port: int | None
    bound_at: float
    requests: list[str]
    popen: subprocess.Popen[bytes]
    stderr: list[str]


def _jeromq_jar() -> str | None:
    found = sorted(glob.glob("/usr/share/java/jeromq*.jar"))
    return found[0] if found else None


def _owned_private_dir(path: Path) -> bool:
    """Ours and not writable by others: the cache sits in the shared temp dir, and running
    classes that another user could have put there would be running their code."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    return (
        path.is_dir()
        and not path.is_symlink()
        and info.st_uid == os.getuid()
        and not info.st_mode & 0o022
    )


def _compiled(javac: str, jar: str) -> Path:
    """The directory holding JeroRep.class, compiled once per (source, jar) content.
    Compiling takes about a second; the cache makes every later start pay only the JVM."""
    key = hashlib.sha256(JAVA_SOURCE.read_bytes() + Path(jar).read_bytes()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"mt5-gate-jerorep-{os.getuid()}-{key}"
    if _owned_private_dir(cache) and (cache / "JeroRep.class").is_file():
        return cache
    # Compile into a private directory and rename it into place: concurrent test runs
    # either win the rename or find a complete cache, never a half-written class file.
    work = Path(tempfile.mkdtemp(prefix="mt5-gate-jerorep-"))
    done = subprocess.run(
        [javac, "-encoding", "UTF-8", "-cp", jar, "-d", str(work), str(JAVA_SOURCE)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        pytest.fail(f"javac {JAVA_SOURCE.name} failed:\n{done.stderr.decode(errors='replace')}")
    try:
        work.rename(cache)
    except OSError:  # another run got there first, or the name is taken by someone else
        if _owned_private_dir(cache) and (cache / "JeroRep.class").is_file():
            shutil.rmtree(work, ignore_errors=True)
            return cache
        return work  # usable, just not cached
    return cache


def _pump(stream: IO[bytes], sink: Callable[[str], None]) -> None:
    for raw in iter(stream.readline, b""):
        sink(raw.decode("utf-8", "replace").rstrip("\n"))


@contextmanager
def jeromq_rep_server(
    reply_json: str, port: int = 0, pub_port: int | None = None
) -> Iterator[JeroPeer]:
    """JeroMQ 0.3.6 REP on tcp://127.0.0.1:``port`` (0: a free one) answering every request
    with ``reply_json``; with ``pub_port`` (0: a free one) also a PUB sending
    ``{"type":"heartbeat"}`` every 100 ms. Yields once the server has bound."""
    javac, java, jar = shutil.which("javac"), shutil.which("java"), _jeromq_jar()
    if javac is None or java is None or jar is None:
        missing = [
            name
            for name, have in (
                ("javac", javac),
                ("java", java),
                ("/usr/share/java/jeromq.jar", jar),
            )
            if not have
        ]
        skip_or_fail(f"the JeroMQ peer needs {', '.join(missing)} ({_INSTALL})")
    assert javac is not None
    assert java is not None
    assert jar is not None
    classes = _compiled(javac, jar)
    argv = [java, "-cp", f"{jar}{os.pathsep}{classes}", "JeroRep", str(port), reply_json]
    if pub_port is not None:
        argv.append(str(pub_port))
    # stdin is a pipe we never write: JeroRep exits at its end of file, so the JVM goes away
    # with us even if this process is killed before the finally below runs.
    popen = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert popen.stdout is not None
    assert popen.stderr is not None
    bound: list[str] = []
    requests: list[str] = []
    stderr: list[str] = []

    def on_stdout(line: str) -> None:
        if line.startswith("request "):
            requests.append(line.removeprefix("request "))
        elif line.startswith("bound "):
            bound.append(line)

    readers = [
        threading.Thread(target=_pump, args=(popen.stdout, on_stdout), daemon=True),
        threading.Thread(target=_pump, args=(popen.stderr, stderr.append), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        poll_until(lambda: bound or popen.poll() is not None, JVM_BOUND_S)
        if not bound:
            # The process exited first: give its reason, not just "timed out".
            readers[1].join(5)
            pytest.fail(
                f"JeroRep exited with {popen.returncode} before binding:\n" + "\n".join(stderr)
            )
        fields = dict(item.split("=", 1) for item in bound[0].split()[1:])
        yield JeroPeer(
            port=int(fields["port"]),
            pub_port=int(fields["pub_port"]) if pub_port is not None else None,
            bound_at=int(fields["at_ms"]) / 1000,
            requests=requests,
            popen=popen,
            stderr=stderr,
        )
    finally:
        _stop(popen)
        for reader in readers:
            reader.join(5)
        for stream in (popen.stdin, popen.stdout, popen.stderr):
            if stream is not None:
                stream.close()


def _stop(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is not None:
        return
    popen.terminate()
    try:
        popen.wait(5)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(5)
