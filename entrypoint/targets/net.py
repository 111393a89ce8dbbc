"""Network targets: a TCP port, a DNS name, an ICMP echo."""

from __future__ import annotations

from typing import TYPE_CHECKING

from entrypoint.addresses import address_text, parse_host, split_host_port
from entrypoint.deadline import Deadline
from entrypoint.gateway.tcp import reach, resolve

if TYPE_CHECKING:
    from entrypoint.targets.base import Context, Probe


def tcp(text: str, _context: Context) -> Probe:
    host, port = split_host_port(text)

    def probe(deadline: Deadline) -> str:
        result = reach(host, port, deadline)
        return f"connected to {address_text(result.address, port)} in {result.connect_ms:.1f} ms"

    return probe


def dns(name: str, _context: Context) -> Probe:
    parse_host(name)

    def probe(deadline: Deadline) -> str:
        return ", ".join(address for _family, address in resolve(name, 0, deadline)[:4])

    return probe


def icmp(host: str, _context: Context) -> Probe:
    parse_host(host)

    def probe(deadline: Deadline) -> str:
        from entrypoint.targets.icmp import echo  # noqa: PLC0415 - only for icmp targets

        return f"echo reply in {echo(host, deadline):.1f} ms"

    return probe
