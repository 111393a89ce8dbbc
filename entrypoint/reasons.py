"""Why an attempt to reach the gateway failed, and what an operator should do about it.

Every failed attempt carries exactly one ``Reason``. Outages are retried until the
deadline; configuration errors (something answers, but not a ZeroMQ REP gateway)
end the wait early with exit 78 because waiting longer cannot fix them.
"""

from __future__ import annotations

import enum

TROUBLESHOOTING = "docs/TROUBLESHOOTING.md"


class Reason(str, enum.Enum):
    DNS = "dns"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    RESET = "reset"
    NOT_ZMQ = "not_zmq"
    NO_REPLY = "no_reply"
    BAD_REPLY = "bad_reply"
    PROTOCOL = "protocol"
    AUTH = "auth"

    def __str__(self) -> str:
        return self.value

    @property
    def is_configuration_error(self) -> bool:
        return self in CONFIGURATION_ERRORS

    @property
    def hint(self) -> str:
        return HINTS[self]


# A port that answers but is not a ZeroMQ REP socket stays that way however long we wait.
CONFIGURATION_ERRORS = frozenset({Reason.NOT_ZMQ, Reason.PROTOCOL, Reason.AUTH})

HINTS: dict[Reason, str] = {
    Reason.DNS: (
        "The gateway name does not resolve. Check GATEWAY_HOST for typos, then run "
        "`getent hosts $GATEWAY_HOST` in the container; on a compose network the name is the "
        f"service name. See {TROUBLESHOOTING}#dns"
    ),
    Reason.REFUSED: (
        "Nothing listens on the gateway port. Check the MT5 bridge process is running and bound "
        "to 0.0.0.0:5555 on the Windows host (`netstat -an | findstr 5555`), and that the Windows "
        f"firewall allows inbound TCP 5555. See {TROUBLESHOOTING}#refused"
    ),
    Reason.TIMEOUT: (
        "TCP connect got no answer: a firewall is dropping packets or there is no route back. "
        "Check Windows Defender Firewall inbound rules for 5555, security groups, and "
        f"`ip route get $GATEWAY_HOST` in the container. See {TROUBLESHOOTING}#timeout"
    ),
    Reason.UNREACHABLE: (
        "The network says the host or network is unreachable. Check the address is right and "
        "routable from this container (`ip route get $GATEWAY_HOST`), the docker network "
        f"subnet, and any VPN. See {TROUBLESHOOTING}#unreachable"
    ),
    Reason.RESET: (
        "The connection was accepted and then closed: the gateway is restarting, or a port "
        "proxy (netsh portproxy, docker-proxy) has no live backend. Check the bridge's own log. "
        f"See {TROUBLESHOOTING}#reset"
    ),
    Reason.NOT_ZMQ: (
        "Something listens on the port but does not speak ZeroMQ: wrong port, or another service "
        "(HTTP, SSH, RDP) took it. Check which process owns the port on the gateway host "
        f"(`netstat -abno | findstr 5555`). See {TROUBLESHOOTING}#not_zmq"
    ),
    Reason.NO_REPLY: (
        "The gateway accepted the connection but did not answer in time: it is hung, frozen, or "
        "overloaded, or the MT5 terminal is not logged in. Check the bridge's log and CPU; "
        f"raise --reply-timeout if it is just slow. See {TROUBLESHOOTING}#no_reply"
    ),
    Reason.BAD_REPLY: (
        "The gateway answered, but not with a JSON object whose status is accepted. Compare the "
        "reply in this log with --expect-status / GATE_EXPECT_STATUS and the bridge's protocol "
        f"version. See {TROUBLESHOOTING}#bad_reply"
    ),
    Reason.PROTOCOL: (
        "The port is a ZeroMQ socket of the wrong kind (not REP/ROUTER, e.g. the PUB port 5556), "
        "or it sent a multipart or oversized reply. Check GATEWAY_PORT points at the REQ/REP "
        f"port. See {TROUBLESHOOTING}#protocol"
    ),
    Reason.AUTH: (
        "The peer rejected our credentials or we rejected its identity: a wrong password in "
        "the URL, or (ZeroMQ CURVE) a wrong server key or a client key not on the gateway's "
        f"allow-list. Check the secret files and keys. See {TROUBLESHOOTING}#auth"
    ),
}


# Concrete next steps per reason, for `mt5-gate probe`; {host} and {port} are filled in.
STEPS: dict[Reason, tuple[str, ...]] = {
    Reason.DNS: (
        "getent hosts {host}    # does the name resolve inside the container?",
        "cat /etc/resolv.conf   # which resolver does the container use?",
        "use the IP literal in GATEWAY_HOST to rule DNS out",
    ),
    Reason.REFUSED: (
        "on the gateway: netstat -an | findstr {port}   # is the bridge LISTENING on 0.0.0.0?",
        "on the gateway: check the MT5 bridge process is running and its log",
        "on the gateway: Windows Defender Firewall inbound rule for TCP {port}",
    ),
    Reason.TIMEOUT: (
        "ip route get {host}    # is there a route, via the expected interface?",
        "on the gateway: is inbound TCP {port} allowed, or silently dropped?",
        "check cloud security groups / host firewalls between the two machines",
    ),
    Reason.UNREACHABLE: (
        "ip route get {host}; ip addr   # wrong subnet, missing route, VPN down?",
        "check the compose network's subnet does not overlap the gateway's network",
    ),
    Reason.RESET: (
        "on the gateway: netsh interface portproxy show all   # a proxy with a dead backend?",
        "on the gateway: is the bridge restarting? check its log",
    ),
    Reason.NOT_ZMQ: (
        "on the gateway: netstat -abno | findstr {port}   # which program owns the port?",
        "check GATEWAY_PORT: the REQ/REP port is usually 5555",
    ),
    Reason.NO_REPLY: (
        "on the gateway: is the bridge hung or busy (CPU, log), is MT5 logged in?",
        "raise GATE_REPLY_TIMEOUT if the gateway is just slow",
    ),
    Reason.BAD_REPLY: (
        "compare the reply shown above with GATE_EXPECT_STATUS",
        "check the bridge's protocol version and its PING handler",
    ),
    Reason.PROTOCOL: (
        "check GATEWAY_PORT is the REQ/REP port (5555), not the PUB port (5556)",
        "check the bridge answers each request with exactly one frame",
    ),
    Reason.AUTH: (
        "check the server public key (GATEWAY_CURVE_SERVER_KEY[_FILE]) matches the gateway",
        "check this client's public key is on the gateway's allow-list",
    ),
}


class AttemptFailed(Exception):
    """One attempt did not reach readiness; ``stage`` says which layer failed."""

    def __init__(self, stage: str, reason: Reason, error: str) -> None:
        super().__init__(f"{stage}: {reason}: {error}")
        self.stage = stage
        self.reason = reason
        self.error = error
