"""Service targets: HTTP(S), Redis and PostgreSQL, each checked with its real client.

Each check first resolves and connects with the TCP layer (so ``dns``, ``refused``,
``timeout`` and ``unreachable`` mean exactly what they mean for the gateway), then speaks
the service's protocol. Redis and PostgreSQL clients are an optional extra
(``pip install mt5-gate[mesh]``); without it those checks say so. A URL's password never
leaves this module: what is shown is ``addresses.redact_url``.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from entrypoint.addresses import host_port
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed, MissingExtra
from entrypoint.gateway.tcp import reach
from entrypoint.logs import untrusted
from entrypoint.reasons import Reason

if TYPE_CHECKING:
    from entrypoint.targets.base import Context, Probe

MESH_EXTRA_HINT = "install the optional clients: pip install 'mt5-gate[mesh]'"
# Client libraries with their own floors: redis-py wants a usable socket timeout, and
# libpq counts connect_timeout in whole seconds (2 at least), so these bound the query.
REDIS_MIN_TIMEOUT_S = 0.05
POSTGRES_MIN_TIMEOUT_S = 1.0


def http(url: str, _context: Context) -> Probe:
    host_port(url)
    return lambda deadline: check_http(url, deadline)


def redis(url: str, _context: Context) -> Probe:
    host_port(url)
    return lambda deadline: check_redis(url, deadline)


def postgres(url: str, _context: Context) -> Probe:
    host_port(url)
    return lambda deadline: check_postgres(url, deadline)


def _reach_first(url: str, deadline: Deadline) -> None:
    """Connect once ourselves, for the precise dns/refused/timeout reasons."""
    reach(*host_port(url), deadline)


def check_http(url: str, deadline: Deadline) -> str:
    """GET ``url`` directly (no proxy: this checks this container's own path); 2xx/3xx pass."""
    import http.client  # noqa: PLC0415 - with ssl, ~15 ms of start-up `wait` rarely needs
    import ssl  # noqa: PLC0415
    host, port = host_port(url)
    _reach_first(url, deadline)
    left = deadline.wait_s()
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
        raise AttemptFailed("http", Reason.NO_REPLY, f"no response within {deadline.limit_s:g} s"
                            ) from None
    except (OSError, http.client.HTTPException) as exc:
        raise AttemptFailed("http", Reason.BAD_REPLY, f"HTTP failed: {untrusted(str(exc), 120)}"
                            ) from None
    finally:
        conn.close()
    if not 200 <= status < 400:
        raise AttemptFailed("http", Reason.BAD_REPLY, f"HTTP status {status}")
    return f"HTTP {status}"


def check_redis(url: str, deadline: Deadline) -> str:
    try:
        import redis  # noqa: PLC0415 - optional extra, imported only when used
    except ImportError:
        raise MissingExtra(f"the Redis check needs redis-py: {MESH_EXTRA_HINT}") from None
    _reach_first(url, deadline)
    # redis-py needs a usable socket timeout even when the connect took nearly all of it.
    left = max(REDIS_MIN_TIMEOUT_S, deadline.remaining())
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


def check_postgres(url: str, deadline: Deadline) -> str:
    try:
        import psycopg  # noqa: PLC0415 - optional extra, imported only when used
    except ImportError:
        raise MissingExtra(f"the PostgreSQL check needs psycopg: {MESH_EXTRA_HINT}") from None
    _reach_first(url, deadline)
    left = max(POSTGRES_MIN_TIMEOUT_S, deadline.remaining())
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
