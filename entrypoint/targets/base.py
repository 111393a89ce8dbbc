"""The shape every target shares: its kind (``kinds``), its context, its probe (see
``targets``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from entrypoint.deadline import Deadline
from entrypoint.errors import UsageError
from entrypoint.targets.kinds import Kind

if TYPE_CHECKING:
    from entrypoint.gateway.endpoint import Endpoint
    from entrypoint.settings.config import GateSettings

Probe = Callable[[Deadline], str]


@dataclasses.dataclass(frozen=True)
class Context:
    """What a target may borrow from the gate's configuration."""

    environ: Mapping[str, str]
    settings: GateSettings  # the gateway's: its dialect, CURVE keys and timeouts
    message_within_s: float | None = None  # mesh: a PUB port must also publish this soon

    def endpoint_for(self, host: str, port: int, options: Mapping[str, str]) -> Endpoint:
        """Another bridge at host:port, spoken to as the gateway is, or as ``options`` (a
        URL's ``bridge``, ``transport``, ``reply_port``) say; ValueError when they are
        invalid. With its own ``bridge``, none of the gateway's dialect applies to it."""
        if not options:
            return self.settings.endpoint._replace(host=host, port=port)
        from entrypoint.settings.config import settings_from_sources  # noqa: PLC0415
        from entrypoint.settings.options import GATEWAY_OPTIONS  # noqa: PLC0415

        environ = {} if "bridge" in options else self.environ
        try:
            own = settings_from_sources(
                {"host": host, "port": str(port), **options}, environ, GATEWAY_OPTIONS
            )
        except UsageError as exc:
            raise ValueError(exc.message) from None
        return own.endpoint._replace(
            curve=self.settings.curve,
            connect_timeout_s=self.settings.connect_timeout_s,
            reply_timeout_s=self.settings.reply_timeout_s,
        )


@dataclasses.dataclass(frozen=True)
class Target:
    kind: Kind
    text: str  # as configured
    shown: str  # as logged: any password replaced by ***
    probe: Probe
    host: str = ""  # for the reasons' hints
    port: int = 0
