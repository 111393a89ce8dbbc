"""Two network namespaces joined by a veth pair: a "client" (the gate) and a "gateway" host.

Traffic stays inside namespaces this test run created (10.200.0.0/24 exists only there);
everything is deleted in ``close`` even when the test fails. See shared/FAULTS.md.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

CLIENT_IP = "10.200.0.1"
GATEWAY_IP = "10.200.0.2"
GATEWAY_NAME = "gateway.test"  # resolvable only through the client's own hosts file
_counter = itertools.count()


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)


class NetnsPair:
    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}x{next(_counter)}"
        self.client = f"mgc{tag}"
        self.gateway = f"mgg{tag}"
        self._veth_c = f"vc{tag}"[:15]
        self._veth_g = f"vg{tag}"[:15]
        self._etc = Path("/etc/netns") / self.client
        try:
            sh("ip", "netns", "add", self.client)
            sh("ip", "netns", "add", self.gateway)
            sh("ip", "link", "add", self._veth_c, "type", "veth", "peer", "name", self._veth_g)
            sh("ip", "link", "set", self._veth_c, "netns", self.client)
            sh("ip", "link", "set", self._veth_g, "netns", self.gateway)
            sh("ip", "-n", self.client, "addr", "add", f"{CLIENT_IP}/24", "dev", self._veth_c)
            sh("ip", "-n", self.gateway, "addr", "add", f"{GATEWAY_IP}/24", "dev", self._veth_g)
            for ns, dev in ((self.client, self._veth_c), (self.gateway, self._veth_g)):
                sh("ip", "-n", ns, "link", "set", "lo", "up")
                sh("ip", "-n", ns, "link", "set", dev, "up")
            # `ip netns exec` bind-mounts these over /etc: the client's resolver is loopback
            # inside its own namespace (nothing listens there), and its hosts file is ours.
            self._etc.mkdir(parents=True, exist_ok=True)
            (self._etc / "resolv.conf").write_text(
                "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
            )
            (self._etc / "hosts").touch()
            self.name_gateway(GATEWAY_IP)
        except BaseException:
            self.close()
            raise

    def name_gateway(self, address: str | None) -> None:
        """Point the client's name `gateway.test` at ``address`` (None: no such name).

        The hosts file is rewritten in place: `ip netns exec` bind-mounts it by inode."""
        entry = f"{address} {GATEWAY_NAME}\n" if address else ""
        with open(self._etc / "hosts", "r+") as f:
            f.seek(0)
            f.write("127.0.0.1 localhost\n" + entry)
            f.truncate()

    def in_client(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.client, *argv]

    def in_gateway(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.gateway, *argv]

    def gateway_rule(self, *rule: str) -> None:
        """An iptables INPUT rule inside the gateway namespace, e.g. ("-j", "DROP")."""
        sh(*self.in_gateway("iptables", "-A", "INPUT", *rule))

    def flush_rules(self) -> None:
        sh(*self.in_gateway("iptables", "-F", "INPUT"))

    def close(self) -> None:
        for ns in (self.client, self.gateway):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self._etc, ignore_errors=True)

    def __enter__(self) -> NetnsPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
