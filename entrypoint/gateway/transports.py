"""How a request reaches the bridge and how its answer comes back: one interface, four ways.

* ``req``: a REQ socket to the bridge's REP (or ROUTER) port; the reply is the answer.
* ``push-pull``: the request goes out on a PUSH socket to the bridge's PULL port, the answer
  comes back on a PULL socket from the bridge's PUSH port (darwinex/dwx-zeromq-connector).
* ``req-pull``: a REQ to the bridge's REP port gets an acknowledgement that is not the
  answer; the answer comes on a PULL socket from the bridge's PUSH port
  (khramkov/MQL5-JSON-API).
* ``handshake``: no request at all; ready when the ZeroMQ handshake with a peer of the
  expected socket type completes (an EA with no side-effect-free request).

The interface, ``req`` and ``handshake`` live here; the two-socket ones in ``two_socket``,
imported only when one is used. Since a bridge's PUSH round-robins over every connected
PULL, the reply port is never touched by a passive check (``passive``): a healthcheck that
connected to it while the strategy runs would take replies meant for the strategy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import zmq

from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.gateway.broker_states import STATES
from entrypoint.gateway.connection import close_monitored, drain
from entrypoint.gateway.endpoint import HANDSHAKE, REQ, Endpoint
from entrypoint.gateway.pending import PendingPing, ProvenPing, pending_socket
from entrypoint.gateway.zmq_client import (
    Exchange,
    Secrecy,
    ZmqGateway,
    request_identity,
)
from entrypoint.process.signals import raise_if_pending
from entrypoint.reasons import Reason

OnSent = Callable[[], None]
# An answer that came too late to be judged: its frames, its round trip, its request's via.
OnLate = Callable[[list[bytes], "float | None", str], None]
Caught = tuple[list[bytes], float | None]  # a reply caught in a pause, and its round trip
_KINDS = {"req": zmq.REQ, "push": zmq.PUSH}


def no_callback() -> None:
    return None


def _ignore_late(_frames: list[bytes], _rtt_ms: float | None, _via: str) -> None:
    return None


class Transport:
    """The interface: one exchange (an attempt), one exchange spent waiting through a
    backoff pause (``watch``), and a check that sends nothing (``passive``)."""

    name = ""

    def __init__(self, gateway: ZmqGateway, endpoint: Endpoint) -> None:
        self.gateway = gateway
        self.endpoint = endpoint
        self.on_late: OnLate = _ignore_late

    def exchange(
        self,
        address: str,
        payload: bytes,
        deadline: Deadline,
        *,
        reply_timeout_s: float,
        on_sent: OnSent = no_callback,
        secret: bool = False,
        via: str = "attempt",
    ) -> Exchange:
        """One request and its answer. A ``secret`` payload is sent only on the connection
        that proved it is ZeroMQ with a socket type ours talks to, right after that proof
        (``ZmqGateway.send_proven``)."""
        raise NotImplementedError

    def watch(
        self,
        address: str,
        payload: bytes,
        pause: Deadline,
        *,
        on_sent: OnSent = no_callback,
        secret: bool = False,
        until: Deadline | None = None,
    ) -> Caught | None:
        """A request pending through a backoff pause; its answer if one came in time. A
        request that reached the bridge is waited for past the pause, never past
        ``until`` (the wait's deadline)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close what the transport keeps between exchanges (a reply channel)."""

    def secrecy(self, secret: bool) -> Secrecy | None:
        return Secrecy(self.endpoint.legacy_secrets) if secret else None

    def passive(self, address: str, deadline: Deadline) -> float:
        """The handshake with the bridge's request socket, in ms; nothing is sent and the
        reply port is not touched."""
        return self.gateway.handshake(
            address, self.endpoint.port, deadline, kind=_KINDS[self.endpoint.handshake_socket]
        )


class ReqTransport(Transport):
    name = REQ

    def identity(self) -> bytes | None:
        """A fresh identity for each request socket, when the bridge routes by it."""
        return request_identity() if self.endpoint.named_requests else None

    def exchange(
        self,
        address: str,
        payload: bytes,
        deadline: Deadline,
        *,
        reply_timeout_s: float,
        on_sent: OnSent = no_callback,
        secret: bool = False,
        via: str = "attempt",
    ) -> Exchange:
        # Queued at once; logged as sent when a connection could carry it to the peer.
        try:
            return self.gateway.request(
                address,
                self.endpoint.port,
                payload,
                deadline,
                connect_timeout_s=self.endpoint.connect_timeout_s,
                reply_timeout_s=reply_timeout_s,
                on_connected=on_sent,
                secret=self.secrecy(secret),
                identity=self.identity(),
            )
        except AttemptFailed as failed:
            if self.endpoint.silent_state is not None:
                name_the_silence(failed, self.endpoint.silent_state)
            raise

    def watch(
        self,
        address: str,
        payload: bytes,
        pause: Deadline,
        *,
        on_sent: OnSent = no_callback,
        secret: bool = False,
        until: Deadline | None = None,
    ) -> Caught | None:
        # A secret goes only on the connection that proved itself (ProvenPing).
        pending: PendingPing | ProvenPing = (
            ProvenPing(
                self.gateway, address, self.endpoint.port, payload, self.endpoint.connect_timeout_s
            )
            if secret
            else PendingPing(
                self.gateway,
                address,
                self.endpoint.port,
                payload,
                self.endpoint.connect_timeout_s,
                identity=self.identity(),
            )
        )
        with pending:
            return pending.wait(
                pause, self.endpoint.reply_timeout_s, on_delivered=on_sent, until=until
            )

    def passive(self, address: str, deadline: Deadline) -> float:
        return self.gateway.handshake(address, self.endpoint.port, deadline, kind=zmq.REQ)


class HandshakeTransport(Transport):
    name = HANDSHAKE

    def exchange(
        self,
        address: str,
        payload: bytes,
        deadline: Deadline,
        *,
        reply_timeout_s: float,
        on_sent: OnSent = no_callback,
        secret: bool = False,
        via: str = "attempt",
    ) -> Exchange:
        took = self.passive(
            address,
            deadline.capped(self.endpoint.timeouts._replace(reply_s=reply_timeout_s).exchange_s),
        )
        return Exchange([], round(took, 2), None)

    def watch(
        self,
        address: str,
        payload: bytes,
        pause: Deadline,
        *,
        on_sent: OnSent = no_callback,
        secret: bool = False,
        until: Deadline | None = None,
    ) -> Caught | None:
        kind = _KINDS[self.endpoint.handshake_socket]
        sock, monitor = pending_socket(
            self.gateway, kind, address, self.endpoint.port, self.endpoint.connect_timeout_s
        )
        try:
            while not pause.expired():
                raise_if_pending()
                if monitor.poll(max(1, int(pause.remaining() * 1000))) and any(
                    event == zmq.EVENT_HANDSHAKE_SUCCEEDED for event, _value in drain(monitor)
                ):
                    return [], None
            return None
        finally:
            close_monitored(sock, monitor)


def name_the_silence(failed: AttemptFailed, state_name: str) -> None:
    """A bridge whose silence after the handshake has a known meaning (a broker holding the
    request for an EA that is not attached) says so in ``failed``: its error, its state and
    what to do. Any other failure is left as it is."""
    if failed.reason is not Reason.NO_REPLY or failed.stage != "zmq" or "handshake" in failed.error:
        return
    state = STATES[state_name]
    failed.error = f"{failed.error}: {state.meaning}"
    failed.broker_state = state.name
    failed.advice = state.advice()


def transport_for(gateway: ZmqGateway, endpoint: Endpoint) -> Transport:
    """The transport ``endpoint`` names (its row's class), speaking through ``gateway``'s
    context. Its module is imported here, when first used: a healthcheck of a ``req``
    bridge never loads the two-socket machinery (``two_socket``, ``answers``)."""
    module, _, name = endpoint.kind.build.partition(":")
    transport: type[Transport] = getattr(
        importlib.import_module(f"entrypoint.gateway.{module}"), name
    )
    return transport(gateway, endpoint)
