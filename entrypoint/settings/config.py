"""The gate's settings: one immutable value built from a command's options, validated whole.

The options themselves, and how each value is resolved (flag, variable, preset, default),
are in ``options.py``; here they are checked together (the transport and its ports, the
dialect's requests against the preset's safety rule, the backoff bounds) before anything
is attempted.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from entrypoint.addresses import address_text
from entrypoint.errors import UsageError
from entrypoint.gateway.dialect import DEFAULT_DIALECT, Dialect, dialect_from_values
from entrypoint.gateway.endpoint import (
    REQ,
    TRANSPORT_KINDS,
    ClientSecurity,
    Endpoint,
    TransportKind,
)
from entrypoint.gateway.presets import DEFAULT_PRESET, Preset
from entrypoint.gateway.requests import RequestTemplate
from entrypoint.settings.options import (
    CURVE_OPTIONS,
    EVERY_SETTING,
    GATEWAY_OPTIONS,
    Option,
    Sources,
    declared,
    one_of,
)

if TYPE_CHECKING:  # argparse is not imported by a bare `mt5-gate health` (see cli)
    import argparse

# The PUB port checked when a transport publishes by default and none is configured.
DEFAULT_PUB_PORT = int(declared("pub_port").default or 5556)


class GateSettings(NamedTuple):
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
    pub_port: int | None = None  # None: neither given nor the preset's (see feed_checked)
    curve: ClientSecurity | None = None
    dialect: Dialect = DEFAULT_DIALECT
    bridge: Preset = DEFAULT_PRESET
    transport: str = REQ
    reply_port: int | None = None
    legacy_secrets: str = "refuse"

    @property
    def target(self) -> str:
        return address_text(self.host, self.port)

    @property
    def kind(self) -> TransportKind:
        return TRANSPORT_KINDS[self.transport]

    @property
    def feed_checked(self) -> bool:
        """Whether the PUB port is part of this gateway's checks: configured, or the
        transport's own default (req bridges publish on 5556)."""
        return self.pub_port is not None or (self.kind.feed_by_default and self.bridge.publishes)

    @property
    def feed_port(self) -> int:
        """The PUB port checked: the configured one, else the default (--pub-port's)."""
        return DEFAULT_PUB_PORT if self.pub_port is None else self.pub_port

    @property
    def endpoint(self) -> Endpoint:
        """What the gateway layer is told: this bridge, and how to speak to it."""
        return Endpoint(
            self.host,
            self.port,
            self.dialect,
            transport=self.transport,
            reply_port=self.reply_port,
            handshake_socket=self.bridge.handshake_socket,
            connect_timeout_s=self.connect_timeout_s,
            reply_timeout_s=self.reply_timeout_s,
            curve=self.curve,
            legacy_secrets=self.legacy_secrets == "allow",
            named_requests=self.bridge.named_requests,
            silent_state=self.bridge.silent_state,
        )


def settings_for(
    args: "argparse.Namespace", environ: Mapping[str, str], options: tuple[Option, ...]
) -> GateSettings:
    """A command's validated settings from its flags and the environment, CURVE included
    (when the command takes the CURVE options and one of them is set)."""
    sources = Sources(vars(args), environ)
    settings = _settings(sources, options)
    if not any(sources.given(opt) for opt in options if opt in CURVE_OPTIONS):
        return settings
    from entrypoint.settings.curve import curve_from_sources  # noqa: PLC0415 - only when CURVE is used

    return settings._replace(curve=curve_from_sources(sources))


def settings_from_sources(
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    options: tuple[Option, ...] = EVERY_SETTING,
) -> GateSettings:
    """Build and validate ``GateSettings`` from ``options`` (a command's gateway options:
    any it does not take keep their defaults); ``flags`` maps field names to raw flag text."""
    return _settings(Sources(flags, environ), options)


def _settings(sources: Sources, options: tuple[Option, ...]) -> GateSettings:
    """Every option asked once (``sources`` keeps where each value came from), then the
    settings validated whole."""
    options = tuple(opt for opt in options if opt.field in _SETTINGS_FIELDS)
    preset = sources.resolve(declared("bridge")) or DEFAULT_PRESET
    values = {opt.field: sources.resolve(opt, preset) for opt in options}
    values["bridge"] = preset
    # A command that does not take --status-request never sends STATUS (health, mesh).
    values["dialect"] = _dialect(
        values.pop("ping_request"),
        values.pop("status_request", "none"),
        values.pop("ready_when", None),
        values["expect_status"],
        sources,
    )._replace(text_fields=preset.text_fields)
    _check_transport(values, sources, preset)
    if not (sources.given("pub_port") or "pub_port" in preset.values):
        values["pub_port"] = None  # a default is not a configuration: see feed_checked
    if values.get("backoff_max_s", 1) < values.get("backoff_initial_s", 0):
        raise UsageError(
            "invalid value for --backoff-max / GATE_BACKOFF_MAX: "
            f"{values['backoff_max_s']} is smaller than --backoff-initial "
            f"{values['backoff_initial_s']}"
        )
    return GateSettings(**values)


# Options that are not GateSettings' fields (or not built from their raw value): the
# CURVE keys (read by curve.py) and the dependency lists, which a command resolves itself.
_SETTINGS_FIELDS = frozenset(opt.field for opt in GATEWAY_OPTIONS) | {
    "timeout_s",
    "backoff_initial_s",
    "backoff_max_s",
    "pub_port",
    "log_format",
    "log_level",
}


def _check_transport(values: dict[str, Any], sources: Sources, preset: Preset) -> None:
    """The transport and its ports and requests, validated together; the preset's safety
    rule applied to the requests actually configured."""
    transport = values["transport"]
    kind = TRANSPORT_KINDS[transport]
    reply_given = sources.given("reply_port")
    if kind.reply_port and values["reply_port"] is None:
        raise UsageError(
            f"--transport / GATE_TRANSPORT {transport} needs --reply-port / "
            "GATEWAY_REPLY_PORT, the bridge's PUSH port that carries answers"
        )
    if not kind.reply_port:
        if reply_given:
            raise UsageError(
                f"{reply_given.where} has no effect with --transport {transport}: "
                "only push-pull and req-pull take a reply port"
            )
        values["reply_port"] = None
    dialect: Dialect = values["dialect"]
    if not kind.sends_requests:
        for field in ("ping_request", "status_request", "ready_when", "expect_status"):
            given = sources.given(field)
            if given:
                raise UsageError(
                    f"{given.where} has no effect with --transport handshake, which sends no "
                    "request"
                )
        values["dialect"] = dialect._replace(status=None)
        return
    if kind.needs:
        _check_installed(kind)
    for request in (dialect.ping, dialect.status):
        if request is None:
            continue
        refusal = preset.refuses(request)
        if refusal is not None:
            raise UsageError(
                f"--bridge {preset.name} refuses the request "
                f"{request.describe()!r}: {refusal}; the gate only sends "
                "side-effect-free requests"
            )
        if kind.requests:
            _check_request(kind, request)


def _check_installed(kind: TransportKind) -> None:
    """A transport's optional package, looked for (not imported) at start: exit 64."""
    import importlib.util  # noqa: PLC0415 - only for a transport with an extra

    if importlib.util.find_spec(kind.needs) is None:
        raise UsageError(
            f"--transport {kind.name} needs the {kind.needs} package, which is not "
            f"installed: pip install 'mt5-gate[{kind.needs}]'"
        )


def _check_request(kind: TransportKind, request: RequestTemplate) -> None:
    """What a transport may send (rpyc: read-only MetaTrader5 calls only): exit 64."""
    import importlib  # noqa: PLC0415 - only for a transport that restricts its requests

    module, _, name = kind.requests.partition(":")
    check = getattr(importlib.import_module(f"entrypoint.gateway.{module}"), name)
    refusal = check(request)
    if refusal is not None:
        raise UsageError(
            f"--transport {kind.name} refuses the request {request.describe()!r}: {refusal}"
        )


def _dialect(
    ping: str,
    status: str,
    ready_when: str | None,
    statuses: frozenset[str],
    sources: Sources,
) -> Dialect:
    """The dialect options, validated together (see dialect.py for what each means)."""
    _ready_source, status_source = one_of(
        sources.given("ready_when"),
        sources.given("expect_status"),
        lambda ready, status: (
            f"{ready.where} and {status.where} are both set: "
            "--ready-when replaces --expect-status; give one of them"
        ),
    )
    if status_source:
        ready_when = None  # --expect-status replaces the preset's judgement
    # A bridge that needs its own readiness request may not know STATUS, and an EA that
    # trades on any request with an "action" would place an order: unless asked for,
    # no STATUS is sent to a bridge whose PING request was customised.
    if sources.given("ping_request") and not sources.given("status_request"):
        status = "none"
    wheres = {
        field: f"{declared(field).flag} / {declared(field).env}"
        for field in ("ping_request", "status_request", "ready_when", "expect_status")
    }
    return dialect_from_values(ping, status, ready_when, statuses, wheres)
