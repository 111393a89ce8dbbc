"""ZeroMQ targets: a bridge's REQ port, asked and judged as the gateway is, and a PUB port."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from entrypoint.addresses import split_host_port
from entrypoint.deadline import Deadline
from entrypoint.gateway.check import GatewayCheck, check_feed
from entrypoint.gateway.zmq_client import ZmqGateway
from entrypoint.logs import untrusted

if TYPE_CHECKING:
    from entrypoint.targets.base import Context, Probe


def request(text: str, context: Context) -> Probe:
    """A REQ/REP port with the gateway's dialect, CURVE keys and stage timeouts."""
    host, port = split_host_port(text)
    settings = dataclasses.replace(context.settings, host=host, port=port)

    def probe(deadline: Deadline) -> str:
        with ZmqGateway(curve=settings.curve) as gateway:
            ready = GatewayCheck(settings, gateway).attempt(deadline)
        return f"reply {untrusted(ready.reply, 80)}"

    return probe


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
