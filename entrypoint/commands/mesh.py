"""``mt5-gate mesh``: every dependency of the strategy container, checked at once.

Four phases as in the original 17-point diagnostic: local environment, network (ICMP),
application ports (gateway REQ and PUB, Redis, PostgreSQL, HTTP) and external (DNS,
outbound TCP). Targets come from the environment (``default_checks``) and, optionally, a
TOML mesh file. All checks run concurrently; exit 0 when all pass, 1 when only
non-critical checks fail, 2 when a critical one fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping
from typing import Any, TextIO

from entrypoint.addresses import address_text, ip_family, url_error
from entrypoint.checks import FAIL, Check, CheckResult, run_concurrently
from entrypoint.commands.arguments import OptionParser, add_groups, add_json_flag, describe
from entrypoint.errors import UsageError
from entrypoint.files import read_regular_file, write_report
from entrypoint.log.logs import configure_logging
from entrypoint.report import Painter, dump_json, hanging, percent, result_line, score
from entrypoint.settings.config import GateSettings, settings_for
from entrypoint.settings.options import (
    CONNECTION,
    CURVE,
    FEED,
    LOG_FORMAT,
    MAX_DURATION_S,
    MESH,
    READINESS,
    declared,
    option_source,
    options_of,
    resolve_option,
)
from entrypoint.targets import KINDS, build
from entrypoint.targets.base import Context, Target

PHASES = {
    "local": "Local environment",
    "network": "Network",
    "application": "Application ports",
    "external": "External",
}
EXIT_ALL_PASS, EXIT_NON_CRITICAL, EXIT_CRITICAL = 0, 1, 2
MIN_PYTHON = "3.11"


# Stands in for the gateway's host when none is configured; never connected to.
NO_HOST = "unset"


def _label(target: Target) -> str:
    names = {
        "zmq_ping": "gateway PING",
        "zmq_pub": "gateway PUB",
        "env": "env",
        "python": "python >=",
        "postgres": "postgresql",
    }
    return f"{names.get(target.kind.name, target.kind.name)} {target.shown}"


# No per-attempt limits (each check has its own timeout), no STATUS, no log level (only
# warnings are logged: the report is the output).
GROUPS = (CONNECTION, READINESS, FEED, LOG_FORMAT, CURVE, MESH)


def add_arguments(parser: OptionParser) -> None:
    describe(
        parser,
        description="Local environment, network (ICMP), application ports "
        "(gateway REQ and PUB, Redis, PostgreSQL, HTTP) and external "
        "(DNS, TCP), all at once.",
        epilog="exit codes: 0 every check passed, 1 only non-critical checks failed, "
        "2 a critical check failed, 64 usage error, 74 the report cannot be written to "
        "stdout",
    )
    add_groups(parser, *GROUPS)
    add_json_flag(parser)


def run(args: argparse.Namespace, _command: list[str], environ: Mapping[str, str]) -> int:
    flags = vars(args)
    host_given = option_source(declared("host"), flags, environ) is not None
    # Every option but the host applies whether or not a gateway host is configured: a
    # mesh file's zmq_ping checks must send the configured request (an EA may trade on
    # any other) and judge by the configured rule. Only a missing host is tolerated; the
    # mesh reports it as a failed check.
    configured = settings_for(
        args if host_given else argparse.Namespace(**{**flags, "host": NO_HOST}),
        environ,
        options_of(*GROUPS),
    )
    settings = configured if host_given else None
    path = resolve_option(declared("mesh_file"), flags, environ)
    document = load_mesh_file(path) if path else None
    checks = build_checks(
        settings, environ, document, path or "", base=configured, host_given=host_given
    )
    configure_logging(configured.log_format, "warning")
    return run_mesh(checks, as_json=args.json)


def default_specs(
    settings: GateSettings | None, environ: Mapping[str, str], host_given: bool = False
) -> list[dict[str, Any]]:
    """The checks implied by the environment: gateway, Redis, PostgreSQL, HTTP, DNS...

    GATEWAY_HOST must be set in the environment the gate runs in, unless this run names the
    host with --host (checking a gateway from a shell, say)."""
    specs: list[dict[str, Any]] = [{"kind": "python", "target": MIN_PYTHON}]
    if not (host_given and not option_source(declared("host"), {}, environ)):
        specs.append({"kind": "env", "target": "GATEWAY_HOST", "critical": True})
    specs.append({"kind": "writable", "target": tempfile.gettempdir()})
    if settings is not None:
        specs += [
            {"kind": "icmp", "target": settings.host},
            {
                "kind": "zmq_ping",
                "target": address_text(settings.host, settings.port),
                "critical": True,
            },
        ]
        if settings.feed_checked:
            specs.append(
                {"kind": "zmq_pub", "target": address_text(settings.host, settings.feed_port)}
            )
        if ip_family(settings.host) is None:
            specs.append({"kind": "dns", "target": settings.host, "critical": True})
    specs += [{"kind": "icmp", "target": host} for host in _from(environ, "mesh_icmp")]
    specs += [{"kind": "redis", "target": url} for url in _from(environ, "redis_url")]
    specs += [{"kind": "postgres", "target": url} for url in _from(environ, "database_url")]
    specs += [{"kind": "http", "target": url} for url in _from(environ, "mesh_http")]
    specs += [{"kind": "dns", "target": name} for name in _from(environ, "mesh_dns")]
    specs += [{"kind": "tcp", "target": hp} for hp in _from(environ, "mesh_tcp")]
    return specs


def _from(environ: Mapping[str, str], field: str) -> list[str]:
    """A mesh target option's values (variables only: none has a flag)."""
    value = resolve_option(declared(field), {}, environ)
    return value if isinstance(value, list) else [value] if value else []


MAX_MESH_FILE_BYTES = 1024 * 1024  # a mesh file is a few KiB: more is not one


def load_mesh_file(path: str) -> dict[str, Any]:
    # Read as bytes, never blocking (a FIFO would wait for a writer forever), decoded here:
    # tomllib.load would let a binary file's UnicodeDecodeError through as a crash.
    try:
        raw = read_regular_file(path, MAX_MESH_FILE_BYTES)
    except OSError as exc:
        raise UsageError(f"mesh file {path}: {exc.strerror}") from None
    if len(raw) > MAX_MESH_FILE_BYTES:
        raise UsageError(f"mesh file {path}: larger than {MAX_MESH_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"mesh file {path}: not UTF-8 text (byte {exc.start}); TOML is UTF-8"
        ) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"mesh file {path}: invalid TOML: {exc}") from None
    unknown = set(document) - {"include_defaults", "timeout", "pub_message_within", "check"}
    if unknown:
        raise UsageError(f"mesh file {path}: unknown keys {sorted(unknown)}")
    return document


def build_checks(
    settings: GateSettings | None,
    environ: Mapping[str, str],
    document: dict[str, Any] | None,
    source: str = "",
    *,
    base: GateSettings | None = None,
    host_given: bool = False,
) -> list[Check]:
    """Turn the default specs and the mesh file's ``[[check]]`` tables into Checks.

    ``settings``: the gateway's, None when no host is configured. ``base``: the options
    every check is built with (dialect, CURVE keys), the gateway's or, without a host,
    the same options with a placeholder host."""
    document = document or {}
    default_timeout = _number(document.get("timeout", 5.0), f"{source}: timeout")
    message_within = document.get("pub_message_within")
    if message_within is not None:
        message_within = _number(message_within, f"{source}: pub_message_within")
    specs = (
        default_specs(settings, environ, host_given)
        if document.get("include_defaults", True)
        else []
    )
    file_specs = document.get("check", [])
    if not isinstance(file_specs, list):
        raise UsageError(f"{source}: `check` must be an array of tables ([[check]])")
    specs += file_specs
    base = base or settings or GateSettings(host=NO_HOST)
    checks = []
    for index, spec in enumerate(specs, start=1):
        where = f"{source or 'defaults'}: check {index}"
        if not isinstance(spec, dict):
            raise UsageError(f"{where}: must be a table")
        unknown = set(spec) - {"kind", "target", "timeout", "critical", "phase", "name"}
        if unknown:
            raise UsageError(f"{where}: unknown keys {sorted(unknown)}")
        kind, text = KINDS.get(str(spec.get("kind"))), spec.get("target")
        if kind is None:
            raise UsageError(f"{where}: kind must be one of {', '.join(KINDS)}")
        if not isinstance(text, str) or not text:
            raise UsageError(f"{where}: target must be a non-empty string")
        timeout = _number(spec.get("timeout", default_timeout), f"{where}: timeout")
        # A gateway check's stages are bounded by the check's own timeout, as
        # --connect-timeout and --reply-timeout would bound them.
        context = Context(
            environ,
            base._replace(connect_timeout_s=timeout, reply_timeout_s=timeout),
            message_within,
        )
        try:
            target = build(kind, text, context)
        except ValueError as exc:
            raise UsageError(f"{where}: target {url_error(text, str(exc))}") from None
        critical = spec.get("critical", kind.name == "zmq_ping")
        if not isinstance(critical, bool):  # "no" would otherwise count as true
            raise UsageError(f"{where}: critical must be true or false")
        phase = spec.get("phase", kind.phase)
        if phase not in PHASES:
            raise UsageError(f"{where}: phase must be one of {', '.join(PHASES)}")
        checks.append(
            Check(
                name=str(spec.get("name") or _label(target)),
                phase=phase,
                run=target.probe,
                timeout_s=timeout,
                critical=critical,
                about_gateway=(target.host, target.port) if kind.gateway else None,
            )
        )
    return checks


def _number(value: Any, where: str) -> float:
    # TOML has inf and nan: neither is a timeout (inf would let a check hang the mesh); and
    # a timeout past a day overflows libzmq's milliseconds, as the options' bound says.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_DURATION_S
    ):
        raise UsageError(
            f"{where}: expected a number of seconds > 0 and at most {MAX_DURATION_S:.0f}"
        )
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
    code = exit_code(results)
    # A full stdout: exit 74 (EX_IOERR), whatever the checks found.
    write_report("mesh", lambda: _report(results, code, wall_ms, as_json, stream))
    return code


def _report(
    results: list[CheckResult], code: int, wall_ms: float, as_json: bool, stream: TextIO
) -> None:
    passed, counted = score(results)
    if as_json:
        dump_json(
            {
                "score": f"{passed}/{counted}",
                "percent": percent(passed, counted),
                "passed": passed,
                "counted": counted,
                "exit_code": code,
                "wall_ms": wall_ms,
                "checks": [r.as_dict() for r in results],
            },
            stream,
        )
        return
    paint = Painter(stream)
    width = min(40, max((len(r.name) for r in results), default=10))
    for phase, title in PHASES.items():
        in_phase = [r for r in results if r.phase == phase]
        if not in_phase:
            continue
        stream.write(paint.bold(title) + "\n")
        for result in in_phase:  # each line within report.WIDTH: a long detail, hint folded
            stream.write(result_line(result, paint, width) + "\n")
            if result.status == FAIL and result.hint:
                stream.write("\n".join(hanging("      → ", result.hint)) + "\n")
        stream.write("\n")
    verdict = {
        EXIT_ALL_PASS: "full mesh",
        EXIT_NON_CRITICAL: "partial",
        EXIT_CRITICAL: "compromised (a critical check failed)",
    }[code]
    stream.write(
        "\n".join(
            hanging(
                paint.bold(f"Score: {passed}/{counted} ({percent(passed, counted)})") + "  ",
                f"{verdict}; {len(results)} checks in {wall_ms / 1000:.2f} s",
            )
        )
        + "\n"
    )
    stream.flush()
