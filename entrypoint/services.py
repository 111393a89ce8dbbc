"""Checks of the strategy's other dependencies: plain TCP, DNS, HTTP(S), Redis, PostgreSQL.

Each check first resolves and connects with ``tcp_probe`` (so ``dns``, ``refused``,
``timeout`` and ``unreachable`` mean exactly what they mean for the gateway), then speaks
the service's protocol with its real client library. Redis and PostgreSQL clients are an
optional extra (``pip install mt5-gate[mesh]``); without it those checks say so.
Passwords in URLs never leave this module: ``redact_url`` is what gets printed.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from entrypoint.logs import untrusted
from entrypoint.reasons import AttemptFailed, Reason
from entrypoint.tcp_probe import reach, resolve

MESH_EXTRA_HINT = "install the optional clients: pip install 'mt5-gate[mesh]'"
DEFAULT_PORTS = {"http": 80, "https": 443, "redis": 6379, "rediss": 6379,
                 "postgresql": 5432, "postgres": 5432}


class MissingExtra(Exception):
    """A check needs a client library that is not installed."""


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (user names are kept: they help)."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def host_port(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{redact_url(url)!r} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{redact_url(url)!r} has an invalid port") from None
    if port is None:
        port = DEFAULT_PORTS.get(parts.scheme)
    if port is None:
        raise ValueError(f"{redact_url(url)!r} needs a port")
    return parts.hostname, port


def _reach_first(url: str, timeout_s: float, minimum_s: float) -> float:
    """Connect once ourselves (precise dns/refused/timeout reasons); return the time left."""
    started = time.monotonic()
    host, port = host_port(url)
    reach(host, port, timeout_s)
    return max(minimum_s, timeout_s - (time.monotonic() - started))


def check_tcp(host: str, port: int, timeout_s: float) -> str:
    result = reach(host, port, timeout_s)
    return f"connected to {result.address}:{port} in {result.connect_ms:.1f} ms"


def check_dns(name: str, timeout_s: float) -> str:
    addresses = resolve(name, 0, timeout_s)
    return ", ".join(address for _family, address in addresses[:4])


def check_http(url: str, timeout_s: float) -> str:
    """GET ``url`` directly (no proxy: this checks this container's own path); 2xx/3xx pass."""
    import http.client  # noqa: PLC0415 - with ssl, ~15 ms of start-up `wait` rarely needs
    import ssl  # noqa: PLC0415
    host, port = host_port(url)
    left = _reach_first(url, timeout_s, 0.001)
    parts = urllib.parse.urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=left,
                                           context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=left)
    try:
        conn.request("GET", urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, "")),
                     headers={"User-Agent": "mt5-gate"})
        status = conn.getresponse().status
    except ssl.SSLError as exc:
        raise AttemptFailed("http", Reason.PROTOCOL, f"TLS failed: {exc.reason}") from None
    except TimeoutError:
        raise AttemptFailed("http", Reason.NO_REPLY, f"no response within {timeout_s:g} s"
                            ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise AttemptFailed("http", Reason.BAD_REPLY, f"HTTP failed: {untrusted(str(exc), 120)}"
                            ) from None
    finally:
        conn.close()
    if not 200 <= status < 400:
        raise AttemptFailed("http", Reason.BAD_REPLY, f"HTTP status {status}")
    return f"HTTP {status}"


def check_redis(url: str, timeout_s: float) -> str:
    try:
        import redis  # noqa: PLC0415 - optional extra, imported only when used
    except ImportError:
        raise MissingExtra(f"the Redis check needs redis-py: {MESH_EXTRA_HINT}") from None
    left = _reach_first(url, timeout_s, 0.05)
    client: Any = redis.Redis.from_url(url, socket_connect_timeout=left, socket_timeout=left)
    try:
        client.ping()
    except redis.exceptions.AuthenticationError:
        raise AttemptFailed("redis", Reason.AUTH, "Redis rejected the credentials") from None
    except redis.exceptions.ResponseError as exc:
        reason = Reason.AUTH if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc) else \
            Reason.BAD_REPLY
        raise AttemptFailed("redis", reason, f"Redis said {untrusted(str(exc), 120)}") from None
    except redis.exceptions.TimeoutError:
        raise AttemptFailed("redis", Reason.NO_REPLY, f"no PONG within {left:.3g} s") from None
    except redis.exceptions.RedisError as exc:
        raise AttemptFailed("redis", Reason.BAD_REPLY,
                            f"Redis failed: {untrusted(str(exc), 120)}") from None
    finally:
        client.close()
    return "PONG"


def check_postgres(url: str, timeout_s: float) -> str:
    try:
        import psycopg  # noqa: PLC0415 - optional extra, imported only when used
    except ImportError:
        raise MissingExtra(f"the PostgreSQL check needs psycopg: {MESH_EXTRA_HINT}") from None
    left = _reach_first(url, timeout_s, 1.0)
    try:
        # libpq rounds connect_timeout to whole seconds (minimum 2); statement_timeout
        # bounds the query itself.
        with psycopg.connect(url, connect_timeout=max(2, round(left)),
                             options=f"-c statement_timeout={int(left * 1000)}") as conn:
            row = conn.execute("SELECT 1").fetchone()
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "password authentication failed" in text or "pg_hba.conf" in text:
            raise AttemptFailed("postgres", Reason.AUTH,
                                "PostgreSQL rejected the credentials") from None
        if "timeout" in text.lower():
            raise AttemptFailed("postgres", Reason.NO_REPLY,
                                f"no answer within {left:.3g} s") from None
        raise AttemptFailed("postgres", Reason.BAD_REPLY,
                            f"PostgreSQL failed: {untrusted(_first_line(text), 160)}") from None
    except psycopg.Error as exc:
        raise AttemptFailed("postgres", Reason.BAD_REPLY,
                            f"PostgreSQL failed: {untrusted(_first_line(str(exc)), 160)}"
                            ) from None
    if row != (1,):
        raise AttemptFailed("postgres", Reason.BAD_REPLY, f"SELECT 1 returned {row!r}")
    return "SELECT 1 ok"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
