"""The bridge's dialect: which request the gate sends, and how a reply is judged.

Real MT5 bridges disagree on both. The readiness request is ``--ping-request``, the
informational one after readiness ``--status-request`` (or none), both built in
``requests``; readiness itself is a JMESPath expression evaluated on the decoded reply
(``--ready-when``, ``judgement``; replies are decoded in ``replies``). Every command that
talks to the gateway (wait, probe, health, mesh, ``--also zmq+req://``) builds its
requests and judges its replies here and nowhere else.
"""

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from entrypoint.errors import AttemptFailed, UsageError
from entrypoint.gateway.broker_states import BrokerState, broker_state
from entrypoint.gateway.judgement import (
    REFUSING_WORDS,
    Judgement,
    default_judgement,
    default_ready,
    parse_judgement,
    refusing_key,
)
from entrypoint.gateway.replies import decode_reply
from entrypoint.gateway.requests import (
    DEFAULT_PING_REQUEST,
    DEFAULT_STATUS_REQUEST,
    NO_REQUEST,
    RequestTemplate,
    parse_request,
)
from entrypoint.log.logs import untrusted
from entrypoint.reasons import Reason

__all__ = [
    "DEFAULT_DIALECT",
    "DEFAULT_PING_REQUEST",
    "DEFAULT_STATUS_REQUEST",
    "NO_REQUEST",
    "REFUSING_WORDS",
    "Dialect",
    "NotReady",
    "decode_reply",
    "default_ready",
    "dialect_from_values",
    "parse_request",
    "refusing_key",
]

# Keys whose values change from one reply to the next without saying anything about
# readiness; ignored when deciding whether not_ready replies are "the same reply again".
# (Compiled on first use, by re's own cache: a healthy check never compares replies.)
_VOLATILE_KEY = r"(?i)time|date|stamp|uuid|nonce|^seq|^id$|_id$|^ts$|uptime"


class Dialect(NamedTuple):
    """What the gate asks the bridge, and when it takes the answer for "ready"."""

    ping: RequestTemplate
    status: RequestTemplate | None
    judgement: Judgement
    custom_judgement: bool = False  # --ready-when was given (not built from statuses)
    # Replies are OK|key=value|... or KO|<text> (a preset's: PyMetaTrader), decoded into a
    # document by ``text_fields``.
    text_fields: bool = False

    def judge(self, frames: list[bytes]) -> Any:
        """The decoded reply when it says ready; otherwise AttemptFailed (``not_ready``,
        ``bad_reply`` or ``protocol``)."""
        reply = self.decode(frames)
        try:
            ready = self.judgement.accepts(reply)
        except RecursionError:
            raise AttemptFailed(
                "reply", Reason.BAD_REPLY, "reply is nested too deeply to judge"
            ) from None
        except Exception as exc:  # noqa: BLE001 - the reply is the bridge's: see below
            # The expression is checked at start; what it meets here is whatever the bridge
            # sent (a price as a string compared with a number, NaN in floor()), and jmespath
            # raises TypeError, ValueError or OverflowError as readily as its own errors.
            # Any of them means "not shown ready": retried, never a crash, never ready.
            raise AttemptFailed(
                "reply",
                Reason.NOT_READY,
                f"reply {untrusted(reply, 200)}: {self.judgement.expression} "
                f"could not be evaluated on it "
                f"({untrusted(f'{type(exc).__name__}: {exc}', 120)})",
            ) from None
        if not ready:
            raise NotReady(reply, self.judgement.expression)
        return reply

    def decode(self, frames: list[bytes]) -> Any:
        if not self.text_fields:
            return decode_reply(frames)
        # Imported only for the bridge that needs it: no other healthcheck pays for it.
        from entrypoint.gateway.text_fields import decode_text_fields  # noqa: PLC0415

        return decode_text_fields(frames)

    def describe(self) -> dict[str, Any]:
        """What gate.start logs: the templates as configured ($file: paths, not contents)."""
        return {
            "ping_request": self.ping.describe(),
            "status_request": self.status.describe() if self.status else None,
            "ready_when": self.judgement.expression,
        }


class NotReady(AttemptFailed):
    """A well-formed reply that the judgement rejects: the bridge says "not (yet)", and
    perhaps why, in words a broker state names (``broker_states``)."""

    def __init__(self, reply: Any, expression: str) -> None:
        super().__init__(
            "reply",
            Reason.NOT_READY,
            f"reply {untrusted(reply, 200)} does not satisfy {expression}",
        )
        self.reply = reply
        self.state: BrokerState | None = broker_state(reply)
        if self.state is not None:
            self.broker_state = self.state.name
            self.advice = self.state.advice()
        # The reply without the parts that differ every time (timestamps, ids), so that
        # the same refusal repeated is recognised as such.
        self.same_as = untrusted(_without_volatile(reply), 2000)


def _without_volatile(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _without_volatile(value)
            for key, value in node.items()
            if not re.search(_VOLATILE_KEY, str(key))
        }
    if isinstance(node, list):
        return [_without_volatile(value) for value in node]
    return node


def dialect_from_values(
    ping: str,
    status: str,
    ready_when: str | None,
    statuses: frozenset[str],
    wheres: Mapping[str, str],
) -> Dialect:
    """Build and validate the dialect; ``wheres`` names each option as "--flag / VAR"."""
    ping_template = parse_request(ping, wheres["ping_request"])
    status_template = (
        None
        if status.strip().lower() == NO_REQUEST
        else parse_request(status, wheres["status_request"])
    )
    if ready_when is None:
        return Dialect(ping_template, status_template, default_judgement(statuses))
    if not ready_when.strip():
        raise UsageError(f"{wheres['ready_when']}: must not be empty")
    return Dialect(
        ping_template,
        status_template,
        parse_judgement(ready_when, wheres["ready_when"]),
        custom_judgement=True,
    )


def volatile_key(name: str) -> bool:
    return bool(re.search(_VOLATILE_KEY, name))


DEFAULT_DIALECT = dialect_from_values(
    DEFAULT_PING_REQUEST,
    DEFAULT_STATUS_REQUEST,
    None,
    frozenset({"OK", "PONG", "OPERATIONAL"}),
    {
        "ping_request": "--ping-request",
        "status_request": "--status-request",
        "expect_status": "--expect-status",
        "ready_when": "--ready-when",
    },
)
