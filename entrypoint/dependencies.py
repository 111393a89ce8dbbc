"""``wait --also URL``: further targets that must all be ready before the exec.

Each target is waited for on its own thread with the same deadline and backoff as the
gateway; their log lines carry ``target`` (with any password redacted). The gateway
itself is still waited for on the main thread, where signals arrive.
"""

from __future__ import annotations

import dataclasses
import threading
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from entrypoint import services
from entrypoint.config import GateSettings, split_host_port
from entrypoint.errors import GateError, UsageError
from entrypoint.logs import untrusted
from entrypoint.readiness import ReadinessCheck, Ready, check_feed
from entrypoint.retry import BackoffWithJitter, Deadline, wait_until_ready
from entrypoint.zmq_client import ZmqGateway

if TYPE_CHECKING:
    from entrypoint.config import ClientSecurity

SCHEMES = ("tcp", "zmq+req", "zmq+sub", "redis", "rediss", "postgresql", "postgres", "http",
           "https")


@dataclasses.dataclass(frozen=True)
class Dependency:
    url: str
    label: str  # what logs show: the URL with any password redacted
    probe: Callable[[float], str]
    host: str = ""
    port: int = 0


def _zmq_sub(host: str, port: int, curve: ClientSecurity | None, timeout: float) -> str:
    with ZmqGateway(curve=curve) as gateway:
        return f"PUB handshake in {check_feed(gateway, host, port, timeout):.1f} ms"


def _zmq_req(settings: GateSettings, timeout: float) -> str:
    """Another bridge's REQ port, asked and judged exactly as the gateway is."""
    with ZmqGateway(curve=settings.curve) as gateway:
        ready = ReadinessCheck(settings, gateway).attempt(timeout)
    return f"reply {untrusted(ready.reply, 80)}"


def parse_dependency(url: str, settings: GateSettings | None = None) -> Dependency:
    """Validate one ``--also`` URL now, so a typo is a usage error, not a 10-minute wait.

    ``settings`` (the gateway's) lends ``zmq+sub://`` and ``zmq+req://`` targets its CURVE
    keys, and ``zmq+req://`` its dialect and timeouts."""
    curve = settings.curve if settings is not None else None
    label = services.redact_url(url)
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise UsageError(f"--also / GATE_ALSO: {label!r}: the scheme must be one of "
                         f"{', '.join(s + '://' for s in SCHEMES)}")
    try:
        if scheme in ("tcp", "zmq+sub", "zmq+req"):
            target = url.split("://", 1)[1].rstrip("/")
            host, port = split_host_port(target)
        else:
            host, port = services.host_port(url)
    except ValueError as exc:
        raise UsageError(f"--also / GATE_ALSO: {label!r}: {exc}") from None
    probe: Callable[[float], str]
    if scheme == "tcp":
        def probe(timeout: float) -> str:
            return services.check_tcp(host, port, timeout)
    elif scheme == "zmq+sub":
        def probe(timeout: float) -> str:
            return _zmq_sub(host, port, curve, timeout)
    elif scheme == "zmq+req":
        other = dataclasses.replace(settings or GateSettings(host=host), host=host, port=port)

        def probe(timeout: float) -> str:
            return _zmq_req(other, timeout)
    elif scheme in ("redis", "rediss"):
        _require_module("redis", label)

        def probe(timeout: float) -> str:
            return services.check_redis(url, timeout)
    elif scheme in ("postgresql", "postgres"):
        _require_module("psycopg", label)

        def probe(timeout: float) -> str:
            return services.check_postgres(url, timeout)
    else:
        def probe(timeout: float) -> str:
            return services.check_http(url, timeout)
    return Dependency(url, label, probe, host, port)


def _require_module(module: str, label: str) -> None:
    import importlib.util  # noqa: PLC0415

    if importlib.util.find_spec(module) is None:
        raise UsageError(f"--also / GATE_ALSO: {label!r} needs {module}: "
                         f"{services.MESH_EXTRA_HINT}")


class _DependencyCheck:
    """Adapts a Dependency to what ``wait_until_ready`` retries."""

    def __init__(self, dependency: Dependency, attempt_timeout: float) -> None:
        self.dependency = dependency
        self.attempt_timeout = attempt_timeout

    def attempt(self, budget_s: float) -> Ready:
        detail = self.dependency.probe(min(self.attempt_timeout, budget_s))
        return Ready(self.dependency.label, {"detail": detail}, None)

    def watch_pause(self, _seconds: float) -> Ready | None:
        return None


class DependencyWaiter:
    """Waits for every dependency on its own daemon thread; ``join`` collects the outcome."""

    def __init__(self, dependencies: list[Dependency], deadline: Deadline, log: Any,
                 backoff: BackoffWithJitter, attempt_timeout: float) -> None:
        self._errors: list[GateError] = []
        self._threads = [
            threading.Thread(target=self._wait_one, daemon=True, name=f"also-{i}",
                             args=(dep, deadline, log.bind(target=dep.label), backoff,
                                   attempt_timeout))
            for i, dep in enumerate(dependencies)]
        for thread in self._threads:
            thread.start()

    def _wait_one(self, dependency: Dependency, deadline: Deadline, log: Any,
                  backoff: BackoffWithJitter, attempt_timeout: float) -> None:
        check = _DependencyCheck(dependency, attempt_timeout)
        try:
            ready, attempts = wait_until_ready(
                check, deadline, log, backoff=backoff,
                hint=lambda reason: reason.hint_for(dependency.host, dependency.port))
        except GateError as exc:
            exc.target = dependency.label
            self._errors.append(exc)
            return
        log.info("gate.dependency_ready", attempt=attempts,
                 elapsed_s=round(deadline.elapsed(), 3), detail=ready.reply["detail"])

    def raise_if_failed(self) -> None:
        if self._errors:
            raise self._errors[0]

    def join(self) -> None:
        """Block until every dependency is ready (signals still interrupt); raise a failure."""
        for thread in self._threads:
            thread.join()
        self.raise_if_failed()
