"""Why an attempt to reach the gateway failed, and what an operator should do about it.

Every failed attempt carries exactly one ``Reason``. Outages are retried until the
deadline; configuration errors (something answers, but not a ZeroMQ REP gateway)
end the wait early with exit 78 because waiting longer cannot fix them.
"""

from __future__ import annotations

import enum
import os
import re

from entrypoint.addresses import address_text

# docs/TROUBLESHOOTING.md and docs/BRIDGES.md, shipped inside the package (a test keeps
# the copies identical): the gate runs in an image with no repository and no browser, and
# the project has no public address to link to, so a hint names the command that prints
# the section there.
TROUBLESHOOTING = "docs/TROUBLESHOOTING.md"  # in the repository, and in the package
BRIDGES = "docs/BRIDGES.md"
_HEADING = r"^(#{2,3}) (\S+)\s*$"  # compiled when read: not on a healthcheck's path
_PRESET_HEADING = r"^(###) `([^`]+)`: "  # "### `dwx`: darwinex/dwx-zeromq-connector"
FINDING_SETTINGS = "Finding the settings for your bridge"  # BRIDGES.md's how-to section
REHEARSAL = "Rehearsal dialects"  # BRIDGES.md's section on the rehearsal presets


def see(section: str) -> str:
    """Where a reader finds a TROUBLESHOOTING.md section: a command that works wherever
    the gate is installed, a container included."""
    return f"`mt5-gate explain --reason {section}`"


def see_bridge() -> str:
    """Where a reader finds how to find the settings for any bridge (BRIDGES.md): a
    command, as ``see``."""
    return "`mt5-gate explain --bridge`"


def troubleshooting_sections() -> dict[str, str]:
    """Every ``## name`` and ``### name`` section of the packaged TROUBLESHOOTING.md, by
    name: its heading and text up to the next heading of the same or a higher level."""
    return _sections(packaged(TROUBLESHOOTING).splitlines(), _HEADING)


def bridge_sections() -> dict[str, str]:
    """The packaged BRIDGES.md by preset (each ``### `name`: ...`` section), with ``""``
    for how to find the settings for a bridge that has none, and ``all`` for the whole."""
    text = packaged(BRIDGES)
    lines = text.splitlines()
    sections = _sections(lines, _PRESET_HEADING)
    # The presets kept for rehearsal share one section, which names them as GATE_BRIDGE=.
    for shared in _sections(lines, rf"^(##) ({REHEARSAL})$").values():
        for name in re.findall(r"`GATE_BRIDGE=([\w-]+)`", shared):
            sections.setdefault(name, shared)
    finding = _sections(lines, rf"^(##) ({FINDING_SETTINGS})$")
    sections[""] = finding[FINDING_SETTINGS] + "\nPresets: " + ", ".join(sections) + "\n"
    sections["all"] = text
    return sections


def packaged(document: str) -> str:
    """A document shipped in the package, as text."""
    # Beside this module, where a wheel or an editable install puts it; a plain path, as
    # importlib.resources would cost every gate's start-up ~10 ms of imports.
    path = os.path.join(os.path.dirname(__file__), *document.split("/"))
    with open(path, encoding="utf-8") as file:
        return file.read()


def _sections(lines: list[str], pattern: str) -> dict[str, str]:
    """Each heading ``pattern`` matches (group 1 its ``#``s, group 2 its name), with its
    text up to the next heading of the same or a higher level. A line in a fenced code
    block is never a heading (BRIDGES.md's recipes hold ``# recipe: dwx`` comments)."""
    headings: list[tuple[int, int]] = []  # (line, level), outside the fences
    fenced = False
    for number, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (hashes := re.match(r"^(#+) ", line)):
            headings.append((number, len(hashes.group(1))))
    sections: dict[str, str] = {}
    for index, (start, _level) in enumerate(headings):
        heading = re.match(pattern, lines[start])
        if heading is None:
            continue
        level = len(heading.group(1))
        end = next((at for at, other in headings[index + 1 :] if other <= level), len(lines))
        sections[heading.group(2)] = "\n".join(lines[start:end]).strip() + "\n"
    return sections


class Reason(str, enum.Enum):
    DNS = "dns"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    RESET = "reset"
    NOT_ZMQ = "not_zmq"
    NO_REPLY = "no_reply"
    BAD_REPLY = "bad_reply"
    NOT_READY = "not_ready"
    PROTOCOL = "protocol"
    AUTH = "auth"

    def __str__(self) -> str:
        return self.value

    @property
    def is_configuration_error(self) -> bool:
        return self in CONFIGURATION_ERRORS

    def hint_for(self, host: str, port: int | str) -> str:
        """The hint with the real host and port of the target it is about."""
        return HINTS[self].format(host=host, port=port, target=address_text(host, port))


# A port that answers but is not a ZeroMQ REP socket stays that way however long we wait.
CONFIGURATION_ERRORS = frozenset({Reason.NOT_ZMQ, Reason.PROTOCOL, Reason.AUTH})

HINTS: dict[Reason, str] = {
    Reason.DNS: (
        "The gateway name does not resolve. Check GATEWAY_HOST for typos, then run "
        "`getent hosts {host}` in the container; on a compose network the name is the "
        f"service name. See {see('dns')}"
    ),
    Reason.REFUSED: (
        "Nothing listens on {target}. Check the MT5 bridge process is running and bound "
        "to 0.0.0.0:{port} on the Windows host (`netstat -an | findstr {port}`), and that the "
        f"Windows firewall allows inbound TCP {{port}}. See {see('refused')}"
    ),
    Reason.TIMEOUT: (
        "TCP connect to {target} got no answer: a firewall is dropping packets or there is "
        "no route back. Check Windows Defender Firewall inbound rules for {port}, security "
        f"groups, and `ip route get {{host}}` in the container. See {see('timeout')}"
    ),
    Reason.UNREACHABLE: (
        "The network says {host} is unreachable. Check the address is right and routable "
        "from this container (`ip route get {host}`), the docker network subnet, and any "
        f"VPN. See {see('unreachable')}"
    ),
    Reason.RESET: (
        "{target} accepted the connection and then closed it: the gateway is restarting, "
        "or a port proxy (netsh portproxy, docker-proxy) has no live backend. Check the "
        f"bridge's own log. See {see('reset')}"
    ),
    Reason.NOT_ZMQ: (
        "Something listens on {target} but does not speak ZeroMQ: wrong port, or another "
        "service (HTTP, SSH, RDP) took it. Check which process owns the port on the gateway "
        f"host (`netstat -abno | findstr {{port}}`). See {see('not_zmq')}"
    ),
    Reason.NO_REPLY: (
        "{target} accepted the connection but did not answer in time: the bridge is "
        "hung, frozen, or overloaded, or the MT5 terminal is not logged in. Check the "
        "bridge's log and CPU; raise GATE_REPLY_TIMEOUT if it is just slow. "
        f"See {see('no_reply')}"
    ),
    Reason.BAD_REPLY: (
        "{target} answered with bytes that cannot be decoded (not UTF-8 text, or JSON "
        "nested too deeply): a broken bridge, or not the bridge's REQ/REP port. "
        f"See {see('bad_reply')}"
    ),
    Reason.NOT_READY: (
        "{target} answers, but its reply does not satisfy the readiness judgement: the "
        "bridge is not ready yet (MAINTENANCE, DISCONNECTED, not logged in) or refuses this "
        "request (unauthorized, invalid request). If the bridge is healthy, it speaks another "
        f"dialect: set GATE_PING_REQUEST and GATE_READY_WHEN for it ({see_bridge()}; "
        f"`mt5-gate probe` shows the reply). See {see('not_ready')}"
    ),
    Reason.PROTOCOL: (
        "{target} is a ZeroMQ socket of the wrong kind (not REP/ROUTER, e.g. the PUB "
        "port), or it sent a multipart or oversized reply. Check GATEWAY_PORT points at the "
        f"REQ/REP port. See {see('protocol')}"
    ),
    Reason.AUTH: (
        "The peer at {target} rejected our credentials or we rejected its identity: a "
        "wrong password in the URL, or (ZeroMQ CURVE) a wrong server key, CURVE on one side "
        "only, or a client key not on the gateway's allow-list. Check the secret files and "
        f"keys. See {see('auth')}"
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
        "check GATEWAY_PORT ({port}): the REQ/REP port is usually 5555, the PUB port 5556",
    ),
    Reason.NO_REPLY: (
        "on the gateway: is the bridge hung or busy (CPU, log), is MT5 logged in?",
        "raise GATE_REPLY_TIMEOUT if the gateway is just slow",
    ),
    Reason.BAD_REPLY: (
        "check GATEWAY_PORT is the bridge's REQ/REP port ({port}) and the bridge's log",
        "check the bridge answers with UTF-8 JSON (or plain text) in one frame",
    ),
    Reason.NOT_READY: (
        "read the reply shown above: is the bridge saying it is not ready, or refusing "
        "the request (unauthorized, invalid request, unknown action)?",
        f"find the bridge's dialect with {see_bridge()} and set GATE_PING_REQUEST and "
        "GATE_READY_WHEN (or GATE_EXPECT_STATUS) to match it",
        "try a setting first: mt5-gate probe --host {host} --port {port} "
        "--ping-request '<JSON>' --ready-when '<EXPR>'",
    ),
    Reason.PROTOCOL: (
        "check GATEWAY_PORT ({port}) is the REQ/REP port, not the PUB port",
        "check the bridge answers each request with exactly one frame",
    ),
    Reason.AUTH: (
        "check the server public key (GATEWAY_CURVE_SERVER_KEY[_FILE]) matches the gateway",
        "check both sides use CURVE, or neither",
        "check this client's public key is on the gateway's allow-list",
    ),
}

# For an `--also` target that is not a gateway port (Redis, PostgreSQL, HTTP, TCP): the
# hints above speak of the MT5 bridge and Windows, which would send an operator to the
# wrong machine. What each reason means for any service instead.
_DEPENDENCY_MEANING: dict[Reason, str] = {
    Reason.DNS: "its name does not resolve: check the spelling and the network it is on",
    Reason.REFUSED: "nothing listens on its port: is the service running, on that port?",
    Reason.TIMEOUT: "no answer: a firewall dropping packets, a wrong address, or a service "
    "too busy to answer",
    Reason.UNREACHABLE: "no route to it: check its address and the network",
    Reason.RESET: "it closed the connection: is it restarting, or does it expect TLS?",
    Reason.NOT_ZMQ: "something else answers on that port: check the URL's port",
    Reason.NO_REPLY: "it accepted the connection but did not answer",
    Reason.BAD_REPLY: "its answer could not be read: check the URL's scheme and port",
    Reason.NOT_READY: "it answers, but not ready yet (a 5xx, a server still loading)",
    Reason.PROTOCOL: "it speaks another protocol than the URL's scheme says",
    Reason.AUTH: "it rejected the credentials in the URL",
}


def dependency_hint(reason: Reason, target: str) -> str:
    """The hint for a failed `--also` target that is not a gateway port."""
    meaning = _DEPENDENCY_MEANING.get(reason, "see the reason's section")
    return f"{target}: {meaning} (see {see('dependencies')})"
