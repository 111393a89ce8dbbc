"""Every option of every command, declared once, in groups; and how a value is resolved.

Each option (flag, variable, default, parser, help) is declared once, in the group of
options a command takes together (``CONNECTION``, ``READINESS``, ``WAIT_DEADLINE``...);
each command names the groups it uses (see ``commands/``), so argparse, validation,
``--help`` and the README table cannot drift apart, and a flag that would do nothing on a
command is not accepted there. ``option_source`` is the one place where a flag beats its
variable, ``resolve_option`` where both beat a bridge preset and the default; ``Sources``
asks each option once and keeps where its value came from (``Given``), so validation never
asks again or guesses the source from its name.
"""


import math
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from entrypoint.addresses import parse_host, parse_port
from entrypoint.errors import UsageError
from entrypoint.gateway.dialect import DEFAULT_PING_REQUEST, DEFAULT_STATUS_REQUEST
from entrypoint.gateway.endpoint import REQ, TRANSPORT_KINDS, TRANSPORTS
from entrypoint.gateway.presets import PRESETS, Preset, parse_bridge

LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


# The longest duration any option takes: one day. A wait longer than that is "forever"
# (--timeout 0); and a per-attempt limit goes to libzmq as milliseconds in a C int, which a
# value past ~24.8 days overflows (an "internal error", exit 70, before this bound).
MAX_DURATION_S = 86_400.0


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number of seconds, e.g. 2 or 0.5") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError("expected a finite number of seconds >= 0")
    if value > MAX_DURATION_S:
        raise ValueError(f"at most {MAX_DURATION_S:.0f} seconds (one day)")
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


def parse_existing_file(text: str) -> str:
    if not os.path.exists(text):
        raise ValueError("does not exist")
    return text


class Option(NamedTuple):
    """One setting: its flag, its environment variable, its default and how to parse it."""

    field: str
    flag: str | None  # None: set by its variable only
    env: str
    default: str | None
    parse: Callable[[str], Any]
    help: str
    metavar: str = "S"
    optional: bool = False  # with no default: unset means None rather than "required"
    default_help: str | None = None  # how --help shows a default that is not a value
    repeat: bool = False  # a list: the flag repeated, or the variable comma-separated

    @property
    def names(self) -> str:
        """How a message names it: both ways to set it."""
        return f"{self.flag} / {self.env}" if self.flag else self.env

    @property
    def shown_default(self) -> str:
        return self.default_help or self.default or ("none" if self.optional else "required")


class OptionGroup(NamedTuple):
    """Options a command takes together; a command declares the groups it uses."""

    title: str
    options: tuple[Option, ...]


CONNECTION = OptionGroup("connection", (
    Option("host", "--host", "GATEWAY_HOST", None, parse_host,
           "gateway host name, IPv4 or IPv6 literal (required)", "HOST"),
    Option("bridge", "--bridge", "GATE_BRIDGE", None, parse_bridge,
           f"a named bridge preset: {', '.join(PRESETS)}; sets the transport, ports, "
           "request, judgement and STATUS policy, each still overridden by its own flag or "
           "variable (see mt5-gate explain --bridge NAME)", "NAME", optional=True,
           default_help="mt5-gate"),
    Option("transport", "--transport", "GATE_TRANSPORT", REQ, _choice(TRANSPORTS),
           "how requests reach the bridge: "
           + ", ".join(kind.summary for kind in TRANSPORT_KINDS.values()), "NAME"),
    Option("port", "--port", "GATEWAY_PORT", "5555", parse_port,
           "gateway request port (REP, or the bridge's PULL for push-pull, or the rpyc "
           "server for rpyc)", "PORT"),
    Option("reply_port", "--reply-port", "GATEWAY_REPLY_PORT", None, parse_port,
           "the bridge's PUSH port that carries answers (push-pull and req-pull)", "PORT",
           optional=True),
))

# Per-attempt limits (wait, probe, health); mesh bounds each check by its own timeout.
ATTEMPT = OptionGroup("per-attempt limits", (
    Option("connect_timeout_s", "--connect-timeout", "GATE_CONNECT_TIMEOUT", "2",
           parse_positive_seconds, "per-attempt TCP connect limit"),
    Option("reply_timeout_s", "--reply-timeout", "GATE_REPLY_TIMEOUT", "5",
           parse_positive_seconds, "per-attempt limit for the PING reply"),
))

READINESS = OptionGroup("readiness request and judgement", (
    Option("expect_status", "--expect-status", "GATE_EXPECT_STATUS", "OK,PONG,OPERATIONAL",
           parse_status_list, "accepted values of a reply's status field (case-insensitive)",
           "LIST"),
    Option("ping_request", "--ping-request", "GATE_PING_REQUEST", DEFAULT_PING_REQUEST, str,
           "the readiness request, a JSON object; placeholders \"$now\", \"$now_epoch\", "
           "\"$uuid\", \"$file:PATH\" (see mt5-gate explain --bridge)", "JSON"),
    Option("ready_when", "--ready-when", "GATE_READY_WHEN", None, str,
           "JMESPath expression on the reply; truthy (not 0) = ready (see mt5-gate explain "
           "--bridge); replaces --expect-status", "EXPR", optional=True,
           default_help="built from --expect-status"),
    Option("legacy_secrets", "--legacy-secrets", "GATE_LEGACY_SECRETS", "refuse",
           _choice(("refuse", "allow")),
           "`allow` sends a request carrying a $file: secret to a legacy peer (ZMTP 1.0 or "
           "2.0: libzmq 2.x/3.x, JeroMQ 0.3), which cannot prove itself on the connection "
           "the request goes over; by default it goes only after a ZMTP 3 handshake on that "
           "connection", "WORD"),
))

# STATUS is asked once the gateway is ready (wait) or as a layer of its own (probe);
# health and mesh never send it.
STATUS = OptionGroup("status request", (
    Option("status_request", "--status-request", "GATE_STATUS_REQUEST", DEFAULT_STATUS_REQUEST,
           str, "the informational request sent once ready; `none` skips it, and is the "
                "default when --ping-request is set", "JSON"),
))

WAIT_DEADLINE = OptionGroup("deadline and backoff", (
    Option("timeout_s", "--timeout", "GATE_TIMEOUT", "600", parse_seconds,
           "seconds until the gate gives up; 0 = wait forever"),
    Option("backoff_initial_s", "--backoff-initial", "GATE_BACKOFF_INITIAL", "0.5",
           parse_positive_seconds, "first backoff step (doubles per attempt, equal jitter)"),
    Option("backoff_max_s", "--backoff-max", "GATE_BACKOFF_MAX", "10",
           parse_positive_seconds, "largest backoff step"),
))

# `health` runs one attempt under a healthcheck's own timeout: it must not inherit the
# 10-minute GATE_TIMEOUT of the container's wait, so it has its own variable.
HEALTH_DEADLINE = OptionGroup("deadline", (
    Option("timeout_s", "--timeout", "GATE_HEALTH_TIMEOUT", "3", parse_positive_seconds,
           "limit for the single attempt"),
))

FEED = OptionGroup("price feed", (
    Option("pub_port", "--pub-port", "GATEWAY_PUB_PORT", "5556", parse_port,
           "gateway PUB port (ticks)", "PORT"),
))

LOG_FORMAT = OptionGroup("log format", (
    Option("log_format", "--log-format", "GATE_LOG_FORMAT", "auto", _choice(LOG_FORMATS),
           "json, console, or auto (console only when stderr is a TTY)", "FORMAT"),
))

LOG_LEVEL = OptionGroup("log level", (
    Option("log_level", "--log-level", "GATE_LOG_LEVEL", "info", _choice(LOG_LEVELS),
           "debug, info, warning or error", "LEVEL"),
))

# CURVE keys (see curve.py, which reads and checks them): declared here with the other
# options so that building the command line does not import the key handling.
CURVE = OptionGroup("CURVE", (
    Option("curve_server_key", "--curve-server-key", "GATEWAY_CURVE_SERVER_KEY", None, str,
           "the gateway's CURVE public key (40-character Z85); enables CURVE", "KEY",
           optional=True),
    Option("curve_server_key_file", "--curve-server-key-file", "GATEWAY_CURVE_SERVER_KEY_FILE",
           None, str, "file holding the gateway's CURVE public key", "PATH", optional=True),
    Option("curve_secret_key_file", "--curve-secret-key-file", "GATE_CURVE_SECRET_KEY_FILE",
           None, str, "file holding this client's CURVE secret key (default: a fresh "
                        "ephemeral keypair)", "PATH", optional=True),
    Option("curve_public_key_file", "--curve-public-key-file", "GATE_CURVE_PUBLIC_KEY_FILE",
           None, str, "file holding this client's CURVE public key (checked against the "
                        "secret key)", "PATH", optional=True),
))

ALSO = OptionGroup("other dependencies", (
    Option("also", "--also", "GATE_ALSO", None, str,
           "another target that must be ready too (repeatable; the variable "
           "comma-separated): zmq+req://, zmq+sub://, rpyc://, redis://, rediss://, "
           "postgresql://, postgres://, http://, https://, tcp:// (see README); zmq+req is "
           "another bridge, asked and judged like the gateway; rpyc an mt5linux server, "
           "judged as --bridge mt5linux", "URL", optional=True, repeat=True),
))

def parse_absolute_path(text: str) -> str:
    if not os.path.isabs(text):
        raise ValueError("expected an absolute path, e.g. /dev/shm/mt5-gate.state")
    return text


# Where `wait` tells `health` what it still waits for (gatestate.py). Only a variable: the
# gate and its healthcheck must agree on it, and one variable in the container's
# environment is seen by both, where a flag would have to be repeated in the HEALTHCHECK.
STATE = OptionGroup("state file", (
    Option("state_file", None, "GATE_STATE_FILE", None, parse_absolute_path,
           "where wait says what it still waits for; health reads it first (an absolute "
           "path)", optional=True,
           default_help="a new file in /dev/shm"),
))

MESH = OptionGroup("mesh targets", (
    Option("mesh_file", "--file", "GATE_MESH_FILE", None, parse_existing_file,
           "a TOML mesh file adding checks", "PATH", optional=True),
    Option("mesh_icmp", None, "GATE_MESH_ICMP", None, str,
           "hosts to ping (ICMP echo), comma-separated", optional=True, repeat=True),
    Option("mesh_http", None, "GATE_MESH_HTTP", None, str,
           "HTTP(S) URLs that must answer 2xx/3xx, comma-separated", optional=True,
           repeat=True),
    Option("mesh_dns", None, "GATE_MESH_DNS", None, str,
           "names that must resolve, comma-separated", optional=True, repeat=True),
    Option("mesh_tcp", None, "GATE_MESH_TCP", None, str,
           "host:port endpoints that must accept TCP, comma-separated", optional=True,
           repeat=True),
    Option("redis_url", None, "REDIS_URL", None, str,
           "Redis to PING (redis://[:password@]host:port/db)", optional=True),
    Option("database_url", None, "DATABASE_URL", None, str,
           "PostgreSQL to SELECT 1 from (postgresql://user:password@host:port/db)",
           optional=True),
))

# How an option group is offered on the command line, in --help's order.
OPTION_GROUPS = (CONNECTION, ATTEMPT, READINESS, STATUS, WAIT_DEADLINE, HEALTH_DEADLINE, FEED,
                 LOG_FORMAT, LOG_LEVEL, CURVE, ALSO, STATE, MESH)
ALL_OPTIONS: tuple[Option, ...] = tuple(opt for group in OPTION_GROUPS
                                        for opt in group.options)
# What a gateway check is configured with (an --also zmq+req:// URL's own options too).
GATEWAY_OPTIONS: tuple[Option, ...] = (*CONNECTION.options, *ATTEMPT.options,
                                       *READINESS.options, *STATUS.options)
CURVE_OPTIONS = CURVE.options
# Every setting of GateSettings, with wait's deadline: for a caller that names no command.
EVERY_SETTING: tuple[Option, ...] = (*GATEWAY_OPTIONS, *WAIT_DEADLINE.options, *FEED.options,
                                     *LOG_FORMAT.options, *LOG_LEVEL.options)
# By field; `timeout_s` is wait's (health's has its own variable and default).
_BY_FIELD: dict[str, Option] = {opt.field: opt for opt in reversed(ALL_OPTIONS)}


def options_of(*groups: OptionGroup) -> tuple[Option, ...]:
    return tuple(opt for group in groups for opt in group.options)


class Given:
    """A value given on the command line or in the environment, and where it came from.

    A plain slotted class, not a NamedTuple: never compared or replaced, and each
    NamedTuple class costs every healthcheck ~0.1 ms to create."""

    __slots__ = ("by_flag", "raw", "where")

    def __init__(self, raw: Any, where: str, by_flag: bool) -> None:
        self.raw = raw
        self.where = where  # the flag or the variable: what a message names
        self.by_flag = by_flag


def option_source(option: Option, flags: Mapping[str, Any], environ: Mapping[str, str]
                  ) -> Given | None:
    """The raw value and where it came from when the flag or the variable is set, else None.

    The one place where a flag beats its variable. A repeatable option's flag value is the
    list of its occurrences; an empty variable counts as unset (no-color.org's rule)."""
    if option.flag is not None and flags.get(option.field) is not None:
        value = flags[option.field]
        return Given(list(value) if option.repeat else str(value), option.flag, True)
    if environ.get(option.env, "") != "":
        return Given(environ[option.env], option.env, False)
    return None


def one_of(first: Given | None, second: Given | None,
           clash: Callable[[Given, Given], str]) -> tuple[Given | None, Given | None]:
    """Two options that say one thing two ways: given at the same level (two flags, or two
    variables) they clash, a UsageError saying ``clash``; otherwise the flag's wins and the
    other is dropped, as a flag beats a variable everywhere."""
    if first is None or second is None:
        return first, second
    if first.by_flag == second.by_flag:
        raise UsageError(clash(first, second))
    return (first, None) if first.by_flag else (None, second)


class Sources:
    """The flags argparse read and the environment: each option asked once, with where its
    value came from kept (``given``), and resolved against a preset (``resolve``)."""

    def __init__(self, flags: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self.flags = flags
        self.environ = environ
        self._given: dict[Option, Given | None] = {}

    def given(self, option: Option | str) -> Given | None:
        """Where ``option`` (or the declared option of that field) was set, if it was."""
        opt = declared(option) if isinstance(option, str) else option
        if opt not in self._given:
            self._given[opt] = option_source(opt, self.flags, self.environ)
        return self._given[opt]

    def resolve(self, option: Option, preset: Preset | None = None) -> Any:
        return _resolved(option, self.given(option), preset)


def declared(field: str) -> Option:
    """The declared option for ``field`` (one declaration per setting)."""
    return _BY_FIELD[field]


def resolve_option(option: Option, flags: Mapping[str, Any], environ: Mapping[str, str],
                   preset: Preset | None = None) -> Any:
    """The option's value: the flag, else its variable, else the bridge preset's, else its
    default; parsed, or UsageError. ``flags`` maps field names to what argparse read. "Both
    beat the preset" is decided here, "a flag beats its variable" in ``option_source``."""
    return _resolved(option, option_source(option, flags, environ), preset)


def _resolved(option: Option, given: Given | None, preset: Preset | None) -> Any:
    preset_value = preset.values.get(option.field) if preset is not None else None
    if given is not None:
        raw, source = given.raw, given.where
    elif preset_value is not None:
        raw, source = preset_value, f"--bridge {preset.name}"  # type: ignore[union-attr]
    elif option.default is not None:
        raw, source = option.default, "default"
    elif option.repeat:
        return []
    elif option.optional:
        return None
    else:
        raise UsageError(f"{option.names} is required")
    if option.repeat:
        items = raw if isinstance(raw, list) else split_list(raw)
        return [_parsed(option, item, source) for item in items]
    return _parsed(option, raw, source)


def _parsed(option: Option, raw: str, source: str) -> Any:
    try:
        return option.parse(raw)
    except ValueError as exc:
        raise UsageError(
            f"invalid value for {option.names} ({source}): {raw!r}: {exc}") from None
