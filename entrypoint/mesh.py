"""``mt5-gate mesh``: every dependency of the strategy container, checked at once.

Four phases as in the original 17-point diagnostic: local environment, network (ICMP),
application ports (gateway REQ and PUB, Redis, PostgreSQL, HTTP) and external (DNS,
outbound TCP). Targets come from the environment (``default_checks``) and, optionally, a
TOML mesh file. All checks run concurrently; exit 0 when all pass, 1 when only
non-critical checks fail, 2 when a critical one fails.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from entrypoint import icmp, services
from entrypoint.checks import FAIL, Check, CheckResult, run_concurrently
from entrypoint.config import GateSettings, ip_family, split_host_port, split_list
from entrypoint.errors import UsageError
from entrypoint.logs import untrusted
from entrypoint.readiness import ReadinessCheck, check_feed
from entrypoint.reasons import AttemptFailed, Reason
from entrypoint.report import Painter, dump_json, percent, result_line, score
from entrypoint.zmq_client import ZmqGateway

if TYPE_CHECKING:
    from entrypoint.config import ClientSecurity

PHASES = {"local": "Local environment", "network": "Network",
          "application": "Application ports", "external": "External"}
KIND_PHASE = {"python": "local", "env": "local", "file": "local", "writable": "local",
              "icmp": "network", "zmq_ping": "application", "zmq_pub": "application",
              "redis": "application", "postgres": "application", "http": "application",
              "dns": "external", "tcp": "external"}
EXIT_ALL_PASS, EXIT_NON_CRITICAL, EXIT_CRITICAL = 0, 1, 2
MIN_PYTHON = "3.11"


# --- what each kind of check does ------------------------------------------------------

def _python(minimum: str, _timeout: float) -> str:
    want = tuple(int(part) for part in minimum.split("."))
    have = sys.version_info[: len(want)]
    version = ".".join(map(str, sys.version_info[:3]))
    if have < want:
        raise AttemptFailed("local", Reason.BAD_REPLY, f"Python {version} < {minimum}")
    return f"Python {version}"


def _env(environ: Mapping[str, str], name: str, _timeout: float) -> str:
    if not environ.get(name):
        raise AttemptFailed("local", Reason.BAD_REPLY, f"{name} is not set")
    return "set"  # never the value: it may be a secret


def _file(path: str, _timeout: float) -> str:
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise AttemptFailed("local", Reason.BAD_REPLY, f"{path} is missing or unreadable")
    return "present"


def _writable(path: str, _timeout: float) -> str:
    try:
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise AttemptFailed("local", Reason.BAD_REPLY, f"{path}: {exc.strerror}") from None
    return "writable"


def _icmp(host: str, timeout: float) -> str:
    return f"echo reply in {icmp.echo(host, timeout):.1f} ms"


def _zmq_ping(target: str, settings: GateSettings, timeout: float) -> str:
    host, port = split_host_port(target)
    # The check's timeout bounds each layer, as --connect-timeout/--reply-timeout would.
    per_check = dataclasses.replace(settings, host=host, port=port, connect_timeout_s=timeout,
                                    reply_timeout_s=timeout)
    with ZmqGateway(curve=settings.curve) as gateway:
        ready = ReadinessCheck(per_check, gateway).attempt(timeout)
    return f"reply {untrusted(ready.reply, 80)}"


def _zmq_pub(target: str, message_within: float | None, curve: ClientSecurity | None,
             timeout: float) -> str:
    host, port = split_host_port(target)
    with ZmqGateway(curve=curve) as gateway:
        took = check_feed(gateway, host, port, timeout, message_within)
    got = f", a message within {message_within:g} s" if message_within is not None else ""
    return f"handshake in {took:.1f} ms{got}"


def _tcp(target: str, timeout: float) -> str:
    return services.check_tcp(*split_host_port(target), timeout)


# --- building the list of checks -------------------------------------------------------

def _make(kind: str, target: str, *, environ: Mapping[str, str], settings: GateSettings,
          message_within: float | None) -> Callable[[float], str]:
    makers: dict[str, Callable[[float], str]] = {
        "python": partial(_python, target), "env": partial(_env, environ, target),
        "file": partial(_file, target), "writable": partial(_writable, target),
        "icmp": partial(_icmp, target), "zmq_ping": partial(_zmq_ping, target, settings),
        "zmq_pub": partial(_zmq_pub, target, message_within, settings.curve),
        "redis": partial(services.check_redis, target),
        "postgres": partial(services.check_postgres, target),
        "http": partial(services.check_http, target),
        "dns": partial(services.check_dns, target), "tcp": partial(_tcp, target),
    }
    return makers[kind]


def _label(kind: str, target: str) -> str:
    shown = services.redact_url(target) if "://" in target else target
    names = {"zmq_ping": "gateway PING", "zmq_pub": "gateway PUB", "env": "env",
             "python": "python >=", "postgres": "postgresql"}
    return f"{names.get(kind, kind)} {shown}"


def _target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ip_family(host) == 6 else f"{host}:{port}"


def default_specs(settings: GateSettings | None, environ: Mapping[str, str]
                  ) -> list[dict[str, Any]]:
    """The checks implied by the environment: gateway, Redis, PostgreSQL, HTTP, DNS..."""
    specs: list[dict[str, Any]] = [
        {"kind": "python", "target": MIN_PYTHON},
        {"kind": "env", "target": "GATEWAY_HOST", "critical": True},
        {"kind": "writable", "target": tempfile.gettempdir()},
    ]
    if settings is not None:
        specs += [
            {"kind": "icmp", "target": settings.host},
            {"kind": "zmq_ping", "target": _target(settings.host, settings.port),
             "critical": True},
            {"kind": "zmq_pub", "target": _target(settings.host, settings.pub_port)},
        ]
        if ip_family(settings.host) is None:
            specs.append({"kind": "dns", "target": settings.host, "critical": True})
    for host in _listed(environ, "GATE_MESH_ICMP"):
        specs.append({"kind": "icmp", "target": host})
    if environ.get("REDIS_URL"):
        specs.append({"kind": "redis", "target": environ["REDIS_URL"]})
    if environ.get("DATABASE_URL"):
        specs.append({"kind": "postgres", "target": environ["DATABASE_URL"]})
    specs += [{"kind": "http", "target": url} for url in _listed(environ, "GATE_MESH_HTTP")]
    specs += [{"kind": "dns", "target": name} for name in _listed(environ, "GATE_MESH_DNS")]
    specs += [{"kind": "tcp", "target": hp} for hp in _listed(environ, "GATE_MESH_TCP")]
    return specs


def _listed(environ: Mapping[str, str], name: str) -> list[str]:
    return split_list(environ.get(name, ""))


def load_mesh_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise UsageError(f"mesh file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"mesh file {path}: invalid TOML: {exc}") from None
    unknown = set(document) - {"include_defaults", "timeout", "pub_message_within", "check"}
    if unknown:
        raise UsageError(f"mesh file {path}: unknown keys {sorted(unknown)}")
    return document


def build_checks(settings: GateSettings | None, environ: Mapping[str, str],
                 document: dict[str, Any] | None, source: str = "") -> list[Check]:
    """Turn the default specs and the mesh file's ``[[check]]`` tables into Checks."""
    document = document or {}
    default_timeout = _number(document.get("timeout", 5.0), f"{source}: timeout")
    message_within = document.get("pub_message_within")
    if message_within is not None:
        message_within = _number(message_within, f"{source}: pub_message_within")
    specs = default_specs(settings, environ) if document.get("include_defaults", True) else []
    file_specs = document.get("check", [])
    if not isinstance(file_specs, list):
        raise UsageError(f"{source}: `check` must be an array of tables ([[check]])")
    specs += file_specs
    base = settings if settings is not None else GateSettings(host="unset")
    checks = []
    for index, spec in enumerate(specs, start=1):
        where = f"{source or 'defaults'}: check {index}"
        if not isinstance(spec, dict):
            raise UsageError(f"{where}: must be a table")
        unknown = set(spec) - {"kind", "target", "timeout", "critical", "phase", "name"}
        if unknown:
            raise UsageError(f"{where}: unknown keys {sorted(unknown)}")
        kind, target = spec.get("kind"), spec.get("target")
        if kind not in KIND_PHASE:
            raise UsageError(f"{where}: kind must be one of {', '.join(KIND_PHASE)}")
        if not isinstance(target, str) or not target:
            raise UsageError(f"{where}: target must be a non-empty string")
        _validate_target(kind, target, where)
        phase = spec.get("phase", KIND_PHASE[kind])
        if phase not in PHASES:
            raise UsageError(f"{where}: phase must be one of {', '.join(PHASES)}")
        timeout = _number(spec.get("timeout", default_timeout), f"{where}: timeout")
        checks.append(Check(
            name=str(spec.get("name") or _label(kind, target)), phase=phase,
            run=_make(kind, target, environ=environ, settings=base,
                      message_within=message_within),
            timeout_s=timeout, critical=bool(spec.get("critical", kind == "zmq_ping")),
            about_gateway=split_host_port(target) if kind in ("zmq_ping", "zmq_pub")
            else None))
    return checks


def _validate_target(kind: str, target: str, where: str) -> None:
    try:
        if kind in ("zmq_ping", "zmq_pub", "tcp"):
            split_host_port(target)
        elif kind in ("redis", "postgres", "http"):
            schemes = {"redis": ("redis", "rediss"), "postgres": ("postgresql", "postgres"),
                       "http": ("http", "https")}[kind]
            if not target.startswith(tuple(f"{s}://" for s in schemes)):
                raise ValueError(f"expected a {' or '.join(schemes)} URL")
            services.host_port(target)
    except ValueError as exc:
        raise UsageError(f"{where}: target {services.redact_url(target)!r}: {exc}") from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise UsageError(f"{where}: expected a number of seconds > 0")
    return float(value)


# --- running and reporting -------------------------------------------------------------

def exit_code(results: list[CheckResult]) -> int:
    failed = [r for r in results if r.status == FAIL]
    if any(r.critical for r in failed):
        return EXIT_CRITICAL
    return EXIT_NON_CRITICAL if failed else EXIT_ALL_PASS


def run_mesh(checks: list[Check], *, as_json: bool, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    started = time.monotonic()
    results = run_concurrently(checks)
    wall_ms = round((time.monotonic() - started) * 1000, 1)
    passed, counted = score(results)
    code = exit_code(results)
    if as_json:
        dump_json({"score": f"{passed}/{counted}", "percent": percent(passed, counted),
                   "passed": passed, "counted": counted, "exit_code": code,
                   "wall_ms": wall_ms, "checks": [r.as_dict() for r in results]}, stream)
        return code
    paint = Painter(stream)
    width = min(40, max((len(r.name) for r in results), default=10))
    for phase, title in PHASES.items():
        in_phase = [r for r in results if r.phase == phase]
        if not in_phase:
            continue
        stream.write(paint.bold(title) + "\n")
        for result in in_phase:
            stream.write(result_line(result, paint, width) + "\n")
            if result.status == FAIL and result.hint:
                stream.write(f"      → {result.hint}\n")
        stream.write("\n")
    verdict = {EXIT_ALL_PASS: "full mesh", EXIT_NON_CRITICAL: "partial",
               EXIT_CRITICAL: "compromised (a critical check failed)"}[code]
    stream.write(paint.bold(f"Score: {passed}/{counted} ({percent(passed, counted)})") +
                 f"  {verdict}; {len(results)} checks in {wall_ms / 1000:.2f} s\n")
    stream.flush()
    return code


def mesh_file_path(flag: str | None, environ: Mapping[str, str]) -> str | None:
    path = flag or environ.get("GATE_MESH_FILE") or None
    if path is not None and not Path(path).exists():
        raise UsageError(f"--file / GATE_MESH_FILE: {path} does not exist")
    return path

