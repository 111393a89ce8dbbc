"""The gate's configuration: one frozen dataclass built from flags and the environment.

Each option is declared once in ``GATE_OPTIONS`` (flag, variable, default, parser, help),
so argparse, validation, ``--help`` and the README table cannot drift apart. A flag beats
its environment variable; every value is validated up front, before anything is attempted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from entrypoint.addresses import address_text, parse_host, parse_port
from entrypoint.errors import UsageError
from entrypoint.gateway.dialect import (
    DEFAULT_DIALECT,
    DEFAULT_PING_REQUEST,
    DEFAULT_STATUS_REQUEST,
    Dialect,
    dialect_from_values,
)
from entrypoint.gateway.endpoint import (
    HANDSHAKE,
    REQ,
    TRANSPORTS,
    TWO_SOCKET,
    ClientSecurity,
    Endpoint,
)
from entrypoint.gateway.presets import DEFAULT_PRESET, PRESETS, Preset, parse_bridge

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number of seconds, e.g. 2 or 0.5") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError("expected a finite number of seconds >= 0")
    return value


def parse_positive_seconds(text: str) -> float:
    value = parse_seconds(text)
    if value == 0:
        raise ValueError("must be greater than 0")
    return value


def split_list(text: str) -> list[str]:
    """A comma-separated value as its non-empty, trimmed items."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_status_list(text: str) -> frozenset[str]:
    values = frozenset(part.upper() for part in split_list(text))
    if not values:
        raise ValueError("expected a comma-separated list such as OK,PONG")
    return values


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting: its flag, its environment variable, its default and how to parse it."""

    field: str
    flag: str
    env: str
    default: str | None
    parse: Callable[[str], Any]
    help: str
    metavar: str = "S"
    optional: bool = False  # with no default: unset means None rather than "required"
    default_help: str | None = None  # how --help shows a default that is not a value


GATE_OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "GATEWAY_HOST", None, parse_host,
           "gateway host name, IPv4 or IPv6 literal (required)", "HOST"),
    Option("bridge", "--bridge", "GATE_BRIDGE", None, parse_bridge,
           f"a named bridge preset: {', '.join(PRESETS)}; sets the transport, ports, "
           "request, judgement and STATUS policy, each still overridden by its own flag or "
           "variable (see docs/BRIDGES.md)", "NAME", optional=True, default_help="mt5-gate"),
    Option("transport", "--transport", "GATE_TRANSPORT", REQ, _choice(TRANSPORTS),
           "how requests reach the bridge: req (REQ/REP), push-pull (PUSH to --port, the "
           "answer on a PULL from --reply-port), req-pull (REQ acknowledged, the answer on "
           "--reply-port), handshake (no request: the ZeroMQ handshake only)", "NAME"),
    Option("port", "--port", "GATEWAY_PORT", "5555", parse_port,
           "gateway request port (REP, or the bridge's PULL for push-pull)", "PORT"),
    Option("reply_port", "--reply-port", "GATEWAY_REPLY_PORT", None, parse_port,
           "the bridge's PUSH port that carries answers (push-pull and req-pull)", "PORT",
           optional=True),
    Option("timeout_s", "--timeout", "GATE_TIMEOUT", "600", parse_seconds,
           "seconds until the gate gives up; 0 = wait forever"),
    Option("connect_timeout_s", "--connect-timeout", "GATE_CONNECT_TIMEOUT", "2",
           parse_positive_seconds, "per-attempt TCP connect limit"),
    Option("reply_timeout_s", "--reply-timeout", "GATE_REPLY_TIMEOUT", "5",
           parse_positive_seconds, "per-attempt limit for the PING reply"),
    Option("backoff_initial_s", "--backoff-initial", "GATE_BACKOFF_INITIAL", "0.5",
           parse_positive_seconds, "first backoff step (doubles per attempt, equal jitter)"),
    Option("backoff_max_s", "--backoff-max", "GATE_BACKOFF_MAX", "10",
           parse_positive_seconds, "largest backoff step"),
    Option("expect_status", "--expect-status", "GATE_EXPECT_STATUS", "OK,PONG,OPERATIONAL",
           parse_status_list, "accepted values of a reply's status field (case-insensitive)",
           "LIST"),
    Option("ping_request", "--ping-request", "GATE_PING_REQUEST", DEFAULT_PING_REQUEST, str,
           "the readiness request, a JSON object; placeholders \"$now\", \"$now_epoch\", "
           "\"$uuid\", \"$file:PATH\" (see docs/BRIDGES.md)", "JSON"),
    Option("status_request", "--status-request", "GATE_STATUS_REQUEST", DEFAULT_STATUS_REQUEST,
           str, "the informational request sent once ready; `none` skips it, and is the "
                "default when --ping-request is set", "JSON"),
    Option("ready_when", "--ready-when", "GATE_READY_WHEN", None, str,
           "JMESPath expression on the reply; truthy (not 0) = ready (see docs/BRIDGES.md); "
           "replaces --expect-status", "EXPR", optional=True,
           default_help="built from --expect-status"),
    Option("legacy_secrets", "--legacy-secrets", "GATE_LEGACY_SECRETS", "refuse",
           _choice(("refuse", "allow")),
           "`allow` sends a request carrying a $file: secret to a ZMTP 1.0 peer (libzmq "
           "2.x), which cannot prove it is ZeroMQ; by default such a request goes only to a "
           "peer whose greeting proved ZMTP 2.0+ with the right socket type", "WORD"),
    Option("log_format", "--log-format", "GATE_LOG_FORMAT", "auto", _choice(LOG_FORMATS),
           "json, console, or auto (console only when stderr is a TTY)", "FORMAT"),
    Option("log_level", "--log-level", "GATE_LOG_LEVEL", "info", _choice(LOG_LEVELS),
           "debug, info, warning or error", "LEVEL"),
)


_BY_FIELD = {opt.field: opt for opt in GATE_OPTIONS}

PUB_PORT_OPTION = Option("pub_port", "--pub-port", "GATEWAY_PUB_PORT", "5556", parse_port,
                         "gateway PUB port (ticks)", "PORT")
# `health` runs one attempt under a healthcheck's own timeout: it must not inherit the
# 10-minute GATE_TIMEOUT of the container's wait, so it has its own variable.
HEALTH_TIMEOUT_OPTION = Option("timeout_s", "--timeout", "GATE_HEALTH_TIMEOUT", "3",
                               parse_positive_seconds, "limit for the single attempt")
PROBE_OPTIONS = (*GATE_OPTIONS, PUB_PORT_OPTION)
HEALTH_OPTIONS = (*(HEALTH_TIMEOUT_OPTION if opt.field == "timeout_s" else opt
                    for opt in GATE_OPTIONS), PUB_PORT_OPTION)


# CURVE keys (see curve.py, which reads and checks them): declared here with the other
# options so that building the command line does not import the key handling.
CURVE_OPTIONS: tuple[Option, ...] = (
    Option("curve_server_key", "--curve-server-key", "GATEWAY_CURVE_SERVER_KEY", None, str,
           "the gateway's CURVE public key (40-character Z85); enables CURVE", "KEY"),
    Option("curve_server_key_file", "--curve-server-key-file", "GATEWAY_CURVE_SERVER_KEY_FILE",
           None, str, "file holding the gateway's CURVE public key", "PATH"),
    Option("curve_secret_key_file", "--curve-secret-key-file", "GATE_CURVE_SECRET_KEY_FILE",
           None, str, "file holding this client's CURVE secret key (default: a fresh "
                        "ephemeral keypair)", "PATH"),
    Option("curve_public_key_file", "--curve-public-key-file", "GATE_CURVE_PUBLIC_KEY_FILE",
           None, str, "file holding this client's CURVE public key (checked against the "
                        "secret key)", "PATH"),
)


__all__ = ["ClientSecurity", "GateSettings", "Option"]


@dataclasses.dataclass(frozen=True)
class GateSettings:
    host: str
    port: int = 5555
    timeout_s: float = 600.0
    connect_timeout_s: float = 2.0
    reply_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    expect_status: frozenset[str] = frozenset({"OK", "PONG", "OPERATIONAL"})
    log_format: str = "auto"
    log_level: str = "info"
    pub_port: int = 5556
    curve: ClientSecurity | None = None
    dialect: Dialect = DEFAULT_DIALECT
    bridge: Preset = DEFAULT_PRESET
    transport: str = REQ
    reply_port: int | None = None
    pub_port_set: bool = False  # given by a flag, a variable or the preset, not defaulted
    legacy_secrets: str = "refuse"

    @property
    def target(self) -> str:
        return address_text(self.host, self.port)

    @property
    def endpoint(self) -> Endpoint:
        """What the gateway layer is told: this bridge, and how to speak to it."""
        return Endpoint(self.host, self.port, self.dialect, transport=self.transport,
                        reply_port=self.reply_port,
                        handshake_socket=self.bridge.handshake_socket,
                        connect_timeout_s=self.connect_timeout_s,
                        reply_timeout_s=self.reply_timeout_s, curve=self.curve,
                        legacy_secrets=self.legacy_secrets == "allow")


def option_source(option: Option, flags: Mapping[str, Any], environ: Mapping[str, str]
                  ) -> tuple[str, str] | None:
    """(raw value, where it came from: the flag or the variable) when set, else None."""
    if flags.get(option.field) is not None:
        return str(flags[option.field]), option.flag
    if environ.get(option.env, "") != "":
        return environ[option.env], option.env
    return None


def declared(field: str) -> Option:
    """The declared option for ``field`` (one declaration per setting)."""
    return _BY_FIELD[field]


def resolve_option(option: Option, flag_value: str | None, environ: Mapping[str, str],
                   preset: Preset | None = None) -> Any:
    """The option's value: the flag, else its variable, else the bridge preset's, else its
    default; parsed, or UsageError. The one place where "a flag beats its variable" and
    "both beat the preset" are decided."""
    preset_value = preset.values.get(option.field) if preset is not None else None
    if flag_value is not None:
        raw, source = flag_value, option.flag
    elif environ.get(option.env, "") != "":
        raw, source = environ[option.env], option.env
    elif preset_value is not None:
        raw, source = preset_value, f"--bridge {preset.name}"  # type: ignore[union-attr]
    elif option.default is not None:
        raw, source = option.default, "default"
    elif option.optional:
        return None
    else:
        raise UsageError(f"{option.flag} / {option.env} is required")
    try:
        return option.parse(raw)
    except ValueError as exc:
        raise UsageError(
            f"invalid value for {option.flag} / {option.env} ({source}): {raw!r}: {exc}"
        ) from None


def settings_from_sources(
    flags: Mapping[str, Any], environ: Mapping[str, str],
    options: tuple[Option, ...] = GATE_OPTIONS,
) -> GateSettings:
    """Build and validate ``GateSettings``; ``flags`` maps field names to raw flag text."""
    preset = resolve_option(declared("bridge"), flags.get("bridge"), environ) or DEFAULT_PRESET
    values = {opt.field: resolve_option(opt, flags.get(opt.field), environ, preset)
              for opt in options}
    values["bridge"] = preset
    values["dialect"] = _dialect(values.pop("ping_request"), values.pop("status_request"),
                                 values.pop("ready_when", None), values["expect_status"],
                                 flags=flags, environ=environ, preset=preset)
    _check_transport(values, flags, environ, preset)
    if "pub_port" in values:
        values["pub_port_set"] = bool(option_source(PUB_PORT_OPTION, flags, environ)
                                      or "pub_port" in preset.values)
    if values["backoff_max_s"] < values["backoff_initial_s"]:
        raise UsageError(
            "invalid value for --backoff-max / GATE_BACKOFF_MAX: "
            f"{values['backoff_max_s']} is smaller than --backoff-initial "
            f"{values['backoff_initial_s']}"
        )
    return GateSettings(**values)


def _check_transport(values: dict[str, Any], flags: Mapping[str, Any],
                     environ: Mapping[str, str], preset: Preset) -> None:
    """The transport and its ports and requests, validated together; the preset's safety
    rule applied to the requests actually configured."""
    transport = values["transport"]
    reply_given = option_source(declared("reply_port"), flags, environ)
    if transport in TWO_SOCKET and values["reply_port"] is None:
        raise UsageError(f"--transport / GATE_TRANSPORT {transport} needs --reply-port / "
                         "GATEWAY_REPLY_PORT, the bridge's PUSH port that carries answers")
    if transport not in TWO_SOCKET:
        if reply_given:
            raise UsageError(f"{reply_given[1]} has no effect with --transport {transport}: "
                             "only push-pull and req-pull take a reply port")
        values["reply_port"] = None
    dialect: Dialect = values["dialect"]
    if transport == HANDSHAKE:
        for field in ("ping_request", "status_request", "ready_when", "expect_status"):
            given = option_source(declared(field), flags, environ)
            if given:
                raise UsageError(f"{given[1]} has no effect with --transport handshake, "
                                 "which sends no request")
        values["dialect"] = dataclasses.replace(dialect, status=None)
        return
    for request in (dialect.ping, dialect.status):
        if request is None:
            continue
        refusal = preset.refuses(request)
        if refusal is not None:
            raise UsageError(f"--bridge {preset.name} refuses the request "
                             f"{request.describe()!r}: {refusal}; the gate only sends "
                             "side-effect-free requests")


def _dialect(ping: str, status: str, ready_when: str | None, statuses: frozenset[str], *,
             flags: Mapping[str, Any], environ: Mapping[str, str],
             preset: Preset = DEFAULT_PRESET) -> Dialect:
    """The dialect options, validated together (see dialect.py for what each means)."""
    ready_source = option_source(declared("ready_when"), flags, environ)
    status_source = option_source(declared("expect_status"), flags, environ)
    if status_source and not ready_source:
        ready_when = None  # --expect-status replaces the preset's judgement
    if ready_source and status_source:
        if ready_source[1].startswith("--") == status_source[1].startswith("--"):
            raise UsageError(f"{ready_source[1]} and {status_source[1]} are both set: "
                             "--ready-when replaces --expect-status; give one of them")
        # A flag beats a variable: keep whichever came from the command line.
        if status_source[1].startswith("--"):
            ready_when = None
    # A bridge that needs its own readiness request may not know STATUS, and an EA that
    # trades on any request with an "action" would place an order: unless asked for,
    # no STATUS is sent to a bridge whose PING request was customised.
    if (option_source(declared("ping_request"), flags, environ)
            and not option_source(declared("status_request"), flags, environ)):
        status = "none"
    wheres = {field: f"{declared(field).flag} / {declared(field).env}"
              for field in ("ping_request", "status_request", "ready_when", "expect_status")}
    return dialect_from_values(ping, status, ready_when, statuses, wheres)
