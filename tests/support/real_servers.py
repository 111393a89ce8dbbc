"""Real Redis and PostgreSQL servers on loopback for the dependency checks (Debian's
``redis-server`` and ``postgresql``; .ci/run installs them). Not mocks: the checks use the
real client libraries against them."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.helpers import free_port, poll_until, skip_or_fail


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def redis_server(password: str | None = None) -> Iterator[str]:
    """A throw-away redis-server; yields its URL (with the password when one is set)."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server is not installed (apt-get install redis-server)")
    assert binary is not None
    port = free_port()
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ]
    if password:
        argv += ["--requirepass", password]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll_until(lambda: _accepts(port), 10)
        auth = f":{password}@" if password else ""
        yield f"redis://{auth}127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


PG_PASSWORD = "s3cret-pg-pw"


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster (scram-sha-256); yields a URL with the password."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        skip_or_fail("postgresql is not installed (apt-get install postgresql)")
    bindir = os.path.dirname(found[-1])
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        if shutil.which("runuser") is None:
            skip_or_fail("runuser is needed to start postgres as root")
        as_user = ["runuser", "-u", "postgres", "--"]
    workdir = tempfile.mkdtemp(prefix="mt5-gate-pg-")
    port = free_port()
    proc = None
    try:
        pwfile = os.path.join(workdir, "pw")
        with open(pwfile, "w") as handle:
            handle.write(PG_PASSWORD + "\n")
        if as_user:
            shutil.chown(workdir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        data = os.path.join(workdir, "data")
        subprocess.run(
            [
                *as_user,
                f"{bindir}/initdb",
                "-D",
                data,
                "-U",
                "gate",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        proc = subprocess.Popen(
            [
                *as_user,
                f"{bindir}/postgres",
                "-D",
                data,
                "-p",
                str(port),
                "-k",
                workdir,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        poll_until(lambda: _accepts(port), 30)
        yield f"postgresql://gate:{PG_PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(20)
        shutil.rmtree(workdir, ignore_errors=True)
