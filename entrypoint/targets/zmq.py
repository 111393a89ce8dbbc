"""Gateway targets: a bridge's REQ port (or an mt5linux rpyc server), asked and judged as
the gateway is, and a PUB port."""

from __future__ import annotations

from typing import TYPE_CHECKING

from entrypoint.addresses import split_host_port
from entrypoint.deadline import Deadline
from entrypoint.gateway.check import GatewayCheck, check_feed
from entrypoint.gateway.zmq_client import ZmqGateway
from entrypoint.log.logs import untrusted

if TYPE_CHECKING:
    from entrypoint.targets.base import Context, Probe


# What a zmq+req:// URL may say after "?": the bridge's own preset, transport, reply port.
URL_OPTIONS = ("bridge", "transport", "reply_port")


def request(text: str, context: Context) -> Probe:
    """A bridge's request port with the gateway's dialect, transport, CURVE keys and stage
    timeouts, or with its own (``zmq+req://host:port?bridge=dwx&reply_port=32769``)."""
    where, _, query = text.partition("?")
    host, port = split_host_port(where)
    endpoint = context.endpoint_for(host, port, _options(query))

    def probe(deadline: Deadline) -> str:
        with ZmqGateway(curve=endpoint.curve) as gateway:
            ready = GatewayCheck(endpoint, gateway).attempt(deadline)
        if ready.via == "handshake":
            return f"{endpoint.transport} handshake"
        return f"reply {untrusted(ready.reply, 80)}"

    return probe


def rpyc(text: str, context: Context) -> Probe:
    """An mt5linux rpyc server (``rpyc://host:18812``), read and judged as ``--bridge
    mt5linux`` reads it, whatever the gateway's own bridge; ``?bridge=`` may name another."""
    where, _, query = text.partition("?")
    options = {"bridge": "mt5linux", **_options(query)}
    return request(f"{where}?{'&'.join(f'{k}={v}' for k, v in options.items())}", context)


def _options(query: str) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        name, equals, value = pair.partition("=")
        if name not in URL_OPTIONS or not equals or not value:
            # The key only: a value may be a credential (?token=...), never echoed.
            got = f"key {untrusted(name, 40)}" if name else "an empty key"
            raise ValueError(
                f"the query may set {', '.join(o + '=' for o in URL_OPTIONS)} (got {got})"
            )
        options[name] = value
    return options


def feed(text: str, context: Context) -> Probe:
    """A PUB port: a SUB connection shown to work (and, for mesh, a first message)."""
    host, port = split_host_port(text)
    curve, within = context.settings.curve, context.message_within_s

    def probe(deadline: Deadline) -> str:
        with ZmqGateway(curve=curve) as gateway:
            took = check_feed(gateway, host, port, deadline, within)
        got = f", a message within {within:g} s" if within is not None else ""
        return f"PUB handshake in {took:.1f} ms{got}"

    return probe
