"""Service targets: HTTP(S), Redis and PostgreSQL, each checked with its real client.

Each check first resolves and connects with the TCP layer (so ``dns``, ``refused``,
``timeout`` and ``unreachable`` mean exactly what they mean for the gateway), then speaks
the service's protocol. Redis and PostgreSQL clients are an optional extra
(``pip install mt5-gate[mesh]``); without it those checks say so. A URL's password never
leaves this module: what is shown is ``addresses.redact_url``.
"""

from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from entrypoint.addresses import host_port
from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed, MissingExtra
from entrypoint.gateway.tcp import reach
from entrypoint.log.logs import untrusted
from entrypoint.reasons import Reason
from entrypoint.targets.cutoff import CutOff
from entrypoint.targets.kinds import MESH_EXTRA_HINT

if TYPE_CHECKING:
    from entrypoint.targets.base import Context, Probe

# Client libraries with their own floors: redis-py wants a usable socket timeout, and
# libpq counts connect_timeout in whole seconds (2 at least), so these bound the query.
REDIS_MIN_TIMEOUT_S = 0.05
POSTGRES_MIN_TIMEOUT_S = 1.0


# Every build below validates the URL as completely as its client library will read it
# later, so that what the library would reject mid-wait is a usage error (exit 64) now.


def http(url: str, _context: Context) -> Probe:
    host_port(url)
    _request_target(url)
    return lambda deadline: check_http(url, deadline)


def redis(url: str, _context: Context) -> Probe:
    host_port(url)
    _validate_redis_url(url)
    return lambda deadline: check_redis(url, deadline)


def postgres(url: str, _context: Context) -> Probe:
    host_port(url)
    _validate_postgres_url(url)
    return lambda deadline: check_postgres(url, deadline)


def _request_target(url: str) -> str:
    """The path and query as http.client sends them: ASCII without spaces or controls."""
    parts = urllib.parse.urlsplit(url)
    target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    if not target.isascii() or any(ch <= " " or ch == "\x7f" for ch in target):
        raise ValueError(
            "the path and query must be ASCII without spaces or control "
            "characters (percent-encode them, e.g. %C3%A9 for \u00e9)"
        )
    return target


_REDIS_TIMEOUTS = ("socket_timeout", "socket_connect_timeout", "health_check_interval")


def _validate_redis_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise ValueError(f"the database must be a number (/0, /1...), not {database!r}")
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if key == "db" and not value.isdigit():
            raise ValueError(f"db must be a number, not {value!r}")
        if key in _REDIS_TIMEOUTS:
            try:
                seconds = float(value)
            except ValueError:
                raise ValueError(f"{key} must be a number of seconds, not {value!r}") from None
            if not 0 < seconds < float("inf"):  # also refuses NaN
                raise ValueError(f"{key} must be a positive number of seconds")
    try:
        import redis  # noqa: PLC0415 - optional extra; without it the check says so
    except ImportError:
        return
    try:  # what redis-py reads from the URL, and the connection it would build from it
        pool: Any = redis.ConnectionPool.from_url(url)
        pool.connection_class(**pool.connection_kwargs)
    except (ValueError, TypeError, redis.exceptions.RedisError) as exc:
        raise ValueError(f"redis-py rejects it: {untrusted(str(exc), 160)}") from None


_PG_INTEGERS = (
    "connect_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "port",
)
_PG_CHOICES = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "target_session_attrs": (
        "any",
        "read-write",
        "read-only",
        "primary",
        "standby",
        "prefer-standby",
    ),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
}


def _validate_postgres_url(url: str) -> None:
    try:
        import psycopg  # noqa: PLC0415
        from psycopg import conninfo  # noqa: PLC0415 - optional extra
    except ImportError:
        return
    try:  # libpq's own parser: unknown parameters and malformed URIs are refused here
        params = conninfo.conninfo_to_dict(url)
    except psycopg.Error as exc:
        raise ValueError(f"libpq rejects it: {untrusted(_first_line(str(exc)), 160)}") from None
    # libpq checks these values only when it connects; check them now.
    for key in _PG_INTEGERS:
        value = params.get(key)
        if value is not None and not str(value).strip().lstrip("-").isdigit():
            raise ValueError(f"{key} must be a whole number, not {value!r}")
    for port in str(params.get("port") or "").split(","):  # ?port= too; one per host
        if port.strip().isdigit() and not 1 <= int(port) <= 65535:
            raise ValueError(f"port must be 1-65535, not {port.strip()!r}")
    for key, choices in _PG_CHOICES.items():
        value = params.get(key)
        if value is not None and value not in choices:
            raise ValueError(f"{key} must be one of {', '.join(choices)}, not {value!r}")


def _reach_first(url: str, deadline: Deadline) -> None:
    """Connect once ourselves, for the precise dns/refused/timeout reasons."""
    reach(*host_port(url), deadline)


def check_http(url: str, deadline: Deadline) -> str:
    """GET ``url`` directly (no proxy: this checks this container's own path); 2xx/3xx pass.

    The deadline bounds the whole exchange, TLS handshake and headers included: http.client
    gives each read the full timeout, so a server sending a byte every 0.5 s would never be
    late; the ``CutOff`` shuts the connection down when the deadline passes."""
    import http.client  # noqa: PLC0415 - with ssl, ~15 ms of start-up `wait` rarely needs
    import ssl  # noqa: PLC0415

    host, port = host_port(url)
    _reach_first(url, deadline)
    parts = urllib.parse.urlsplit(url)
    with CutOff(deadline) as cut:
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(
                host, port, timeout=deadline.wait_s(), context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=deadline.wait_s())
        # http.client makes its socket with this attribute (since Python 3.0).
        conn._create_connection = _watched_connection(cut)  # type: ignore[attr-defined]
        try:
            conn.request("GET", _request_target(url), headers={"User-Agent": "mt5-gate"})
            status = conn.getresponse().status
            # http.client takes the end-of-file of a cut-off for the end of the headers: a
            # response completed by the cut-off is no response.
            cut.raise_if_fired("http", "complete response")
        except ssl.SSLError as exc:
            cut.raise_if_fired("http", "complete response")
            raise AttemptFailed("http", Reason.PROTOCOL, f"TLS failed: {exc.reason}") from None
        except TimeoutError:
            raise AttemptFailed(
                "http", Reason.NO_REPLY, f"no response within {deadline.limit_s:g} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            cut.raise_if_fired("http", "complete response")
            raise AttemptFailed(
                "http", Reason.BAD_REPLY, f"HTTP failed: {untrusted(str(exc), 120)}"
            ) from None
        finally:
            conn.close()
    if not 200 <= status < 400:
        raise AttemptFailed("http", Reason.BAD_REPLY, f"HTTP status {status}")
    return f"HTTP {status}"


def _watched_connection(cut: CutOff) -> Callable[..., socket.socket]:
    """http.client's ``_create_connection`` whose socket ``cut`` shuts down at the deadline
    (before any TLS handshake, which can drip as well as the headers)."""

    def create(*args: Any, **kwargs: Any) -> socket.socket:
        sock = socket.create_connection(*args, **kwargs)
        cut.watch(sock.fileno())
        return sock

    return create


def check_redis(url: str, deadline: Deadline) -> str:
    try:
        import redis  # noqa: PLC0415 - optional extra, imported only when used
        from redis.backoff import NoBackoff  # noqa: PLC0415
        from redis.retry import Retry  # noqa: PLC0415
    except ImportError:
        raise MissingExtra(f"the Redis check needs redis-py: {MESH_EXTRA_HINT}") from None
    _reach_first(url, deadline)
    # redis-py needs a usable socket timeout even when the connect took nearly all of it.
    left = max(REDIS_MIN_TIMEOUT_S, deadline.remaining())
    with CutOff(deadline) as cut:
        # The deadline, not the URL, bounds the client's waits (a URL's socket_timeout=3600
        # must not hold the gate past its deadline); redis-py's timeouts are per read, so the
        # CutOff bounds the whole exchange, and its own retries are off: the gate retries.
        pool: Any = redis.ConnectionPool.from_url(url)
        pool.connection_class = _watched_redis_connection(pool.connection_class, cut)
        pool.connection_kwargs.update(
            socket_connect_timeout=left, socket_timeout=left, retry=Retry(NoBackoff(), 0)
        )
        client: Any = redis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
        try:
            client.ping()
            cut.raise_if_fired("redis", "PONG")
        except redis.exceptions.AuthenticationError:
            raise AttemptFailed("redis", Reason.AUTH, "Redis rejected the credentials") from None
        except redis.exceptions.ResponseError as exc:
            reason = (
                Reason.AUTH if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc) else Reason.BAD_REPLY
            )
            raise AttemptFailed("redis", reason, f"Redis said {untrusted(str(exc), 120)}") from None
        except redis.exceptions.TimeoutError:
            raise AttemptFailed("redis", Reason.NO_REPLY, f"no PONG within {left:.3g} s") from None
        except redis.exceptions.RedisError as exc:
            cut.raise_if_fired("redis", "PONG")
            raise AttemptFailed(
                "redis", Reason.BAD_REPLY, f"Redis failed: {untrusted(str(exc), 120)}"
            ) from None
        finally:
            client.close()
            pool.disconnect()
    return "PONG"


def _watched_redis_connection(base: type[Any], cut: CutOff) -> type[Any]:
    """redis-py's connection class (plain or TLS) whose socket ``cut`` shuts down at the
    deadline: watched as soon as it is connected, before a TLS handshake or AUTH."""

    class Watched(base):  # type: ignore[misc]
        def _connect(self) -> Any:
            sock = super()._connect()
            cut.watch(sock.fileno())
            return sock

        def _wrap_socket_with_ssl(self, sock: Any) -> Any:  # rediss://: the raw socket
            cut.watch(sock.fileno())
            return super()._wrap_socket_with_ssl(sock)

    return Watched


def check_postgres(url: str, deadline: Deadline) -> str:
    try:
        import psycopg  # noqa: PLC0415 - optional extra, imported only when used
    except ImportError:
        raise MissingExtra(f"the PostgreSQL check needs psycopg: {MESH_EXTRA_HINT}") from None
    _reach_first(url, deadline)
    left = max(POSTGRES_MIN_TIMEOUT_S, deadline.remaining())
    cut = CutOff(deadline)
    try:
        # psycopg bounds the connection's establishment by connect_timeout, in whole seconds
        # (2 at least, as libpq). The query has no client-side limit at all: statement_timeout
        # asks the server to end it, and the CutOff ends it when the server does not (a
        # pgbouncer with an exhausted pool queues it for 120 s, and ignores the option).
        with (
            cut,
            psycopg.connect(
                url,
                autocommit=True,  # the one query, without a BEGIN's round trip before it
                connect_timeout=max(2, round(left)),
                options=f"-c statement_timeout={int(left * 1000)}",
            ) as conn,
        ):
            cut.watch(conn.pgconn.socket)
            row = conn.execute("SELECT 1").fetchone()
            cut.raise_if_fired("postgres", "answer to SELECT 1")
    except psycopg.OperationalError as exc:
        cut.raise_if_fired("postgres", "answer to SELECT 1")
        text = str(exc)
        if "password authentication failed" in text or "pg_hba.conf" in text:
            raise AttemptFailed(
                "postgres", Reason.AUTH, "PostgreSQL rejected the credentials"
            ) from None
        if "timeout" in text.lower():
            raise AttemptFailed(
                "postgres", Reason.NO_REPLY, f"no answer within {left:.3g} s"
            ) from None
        raise AttemptFailed(
            "postgres", Reason.BAD_REPLY, f"PostgreSQL failed: {untrusted(_first_line(text), 160)}"
        ) from None
    except psycopg.Error as exc:
        cut.raise_if_fired("postgres", "answer to SELECT 1")
        raise AttemptFailed(
            "postgres",
            Reason.BAD_REPLY,
            f"PostgreSQL failed: {untrusted(_first_line(str(exc)), 160)}",
        ) from None
    if row != (1,):
        raise AttemptFailed("postgres", Reason.BAD_REPLY, f"SELECT 1 returned {row!r}")
    return "SELECT 1 ok"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
