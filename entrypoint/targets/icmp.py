"""ICMP echo ("ping") without the ping binary, as far as the container is allowed to.

Containers often may not send ICMP: unprivileged ICMP sockets need the process's group in
``net.ipv4.ping_group_range`` and raw sockets need CAP_NET_RAW. When neither is allowed
we raise ``NotPermitted`` so the caller reports "not permitted" instead of a failure.
"""

from __future__ import annotations

import os
import socket
import struct
import time

from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed, NotPermitted
from entrypoint.gateway.tcp import resolve
from entrypoint.reasons import Reason

ECHO_REQUEST_V4, ECHO_REPLY_V4 = 8, 0
ECHO_REQUEST_V6, ECHO_REPLY_V6 = 128, 129


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return int(~total & 0xFFFF)


def _open(family: int) -> tuple[socket.socket, bool]:
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    for kind, raw in ((socket.SOCK_DGRAM, False), (socket.SOCK_RAW, True)):
        try:
            return socket.socket(family, kind, proto), raw
        except PermissionError:
            continue
    raise NotPermitted(
        "ICMP not permitted here (no CAP_NET_RAW, and this group is outside "
        "net.ipv4.ping_group_range)"
    )


def echo(host: str, deadline: Deadline) -> float:
    """One echo request to ``host``; the round trip in ms, or AttemptFailed / NotPermitted."""
    family, address = resolve(host, 0, deadline)[0]
    sock, raw = _open(family)
    v6 = family == socket.AF_INET6
    ident = os.getpid() & 0xFFFF
    payload = b"mt5-gate" + struct.pack("!d", time.time())
    kind = ECHO_REQUEST_V6 if v6 else ECHO_REQUEST_V4
    header = struct.pack("!BBHHH", kind, 0, 0, ident, 1)
    checksum = 0 if v6 else _checksum(header + payload)  # the kernel fills in ICMPv6's
    packet = struct.pack("!BBHHH", kind, 0, checksum, ident, 1) + payload
    try:
        sent = time.monotonic()
        sock.sendto(packet, (address, 0))
        while True:
            if deadline.expired():
                raise AttemptFailed(
                    "icmp",
                    Reason.TIMEOUT,
                    f"no echo reply from {address} within "
                    f"{deadline.limit_s:g} s (ICMP may be blocked by a "
                    "firewall)",
                )
            sock.settimeout(deadline.wait_s())
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            if raw and not v6:
                data = data[(data[0] & 0x0F) * 4 :]  # skip the IPv4 header
            if (
                len(data) >= 8
                and data[0] == (ECHO_REPLY_V6 if v6 else ECHO_REPLY_V4)
                and (not raw or struct.unpack("!H", data[4:6])[0] == ident)
            ):
                return (time.monotonic() - sent) * 1000
    except PermissionError as exc:
        raise NotPermitted(f"ICMP not permitted: {exc.strerror}") from None
    except OSError as exc:
        raise AttemptFailed("icmp", Reason.UNREACHABLE, f"{address}: {exc.strerror}") from None
    finally:
        sock.close()
