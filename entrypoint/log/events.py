"""Every log event the gate and the simulator write, declared once: name, level, fields.

Writers log ``event.name`` through ``emit`` (or ``event.name`` where they must not import
logging, as ``__main__``'s last line of defence); ``gatelog`` (``explain``) reads by the
same names. ``about`` is the README's events table cell, word for word: a test ties the
table to these declarations both ways, and every JSON line the test suite's gates write
is checked against them (a field not declared here fails the suite).
"""

from typing import Any, NamedTuple

# Keys every line has (timestamp, level, event) or may have (exception, a traceback
# without local variables); the simulator's lines also carry `component`.
COMMON = frozenset({"timestamp", "level", "event", "exception"})


class Event(NamedTuple):
    name: str
    level: str  # debug, info, warning or error
    fields: tuple[str, ...]
    about: str  # the README's description of its fields (Markdown)

    def allows(self, key: str) -> bool:
        """Whether a line of this event may carry ``key``."""
        return (
            key in COMMON
            or key in self.fields
            or (key == "component" and self.name.startswith("sim."))
        )


def emit(log: Any, event: Event, **fields: Any) -> None:
    """Write ``event`` at its declared level."""
    getattr(log, event.level)(event.name, **fields)


START = Event(
    "gate.start",
    "info",
    (
        "target",
        "pid",
        "bridge",
        "transport",
        "reply_port",
        "deadline_s",
        "connect_timeout_s",
        "reply_timeout_s",
        "backoff",
        "expect_status",
        "ping_request",
        "status_request",
        "ready_when",
        "command",
        "also",
        "curve",
    ),
    "`target`, `pid`, `bridge`, `transport`, `reply_port`, `deadline_s`, "
    "`connect_timeout_s`, `reply_timeout_s`, `backoff`, `expect_status`, `ping_request` and "
    "`status_request` (templates as configured: `$file:` paths, never contents), "
    "`ready_when` (the expression in force), `command`, `also`, `curve`",
)
REQUEST = Event(
    "gate.request",
    "debug",
    ("via", "transport", "to", "request"),
    "(debug) one per request sent: `via` (`attempt`, `pause`, `status`), `transport`, `to`, "
    "`request` (as sent, `$file:` secrets as `***`)",
)
REPLY = Event(
    "gate.reply",
    "info",
    ("via", "verdict", "rtt_ms", "reply", "error", "broker_state"),
    "a reply that did not make the gate ready: to a request sent during a backoff pause, "
    "or an answer that came too late for the request it answers (two-socket bridges): "
    "`via` (of that request), `verdict` (its reason, or `too_slow`), `rtt_ms`, `reply`, "
    "`error`, `broker_state`",
)
ATTEMPT_FAILED = Event(
    "gate.attempt_failed",
    "warning",
    (
        "attempt",
        "stage",
        "reason",
        "error",
        "elapsed_s",
        "next_retry_s",
        "hint",
        "suppressed",
        "suppressed_reasons",
        "broker_state",
        "target",
    ),
    "`attempt`, `stage` (`dns`, `tcp`, `greeting`, `zmq`, `reply`), `reason`, `error`, "
    "`elapsed_s`, `next_retry_s`, `hint` (+ `suppressed`, `suppressed_reasons` on "
    "summaries; + `broker_state` when the bridge said why it cannot trade, and then `hint` "
    "is what to do in the terminal; + `target` for an `--also` dependency)",
)
READY = Event(
    "gate.ready",
    "info",
    ("attempt", "elapsed_s", "rtt_ms", "address", "via", "reply"),
    "`attempt`, `elapsed_s`, `rtt_ms`, `address`, `via`, `reply`: `via` is `attempt` (attempt "
    "number `attempt` answered), `pause` (the request queued in the pause after attempt "
    "`attempt` answered) or `handshake` (`--transport handshake`)",
)
REPLY_REJECTED = Event(
    "gate.reply_rejected",
    "warning",
    ("replies", "reply", "error", "message", "fix", "target"),
    "`replies`, `reply`, `error`, `message`, `fix` (+ `target` for an `--also` bridge): once "
    "per distinct reply, when the same `not_ready` reply came 3 times in a row",
)
STATUS = Event(
    "gate.status",
    "info",
    ("requested", "available", "reply", "reason", "error", "broker_state"),
    "`available` and `reply`, or `available` false with `reason`, `error` (and `reply`, "
    "`broker_state` when the bridge refused); `requested` false with `--status-request none`",
)
EXEC = Event("gate.exec", "info", ("argv", "program"), "`argv`, `program`")
TIMEOUT = Event(
    "gate.timeout",
    "error",
    ("error", "elapsed_s", "attempts", "last_reason", "hint", "exit_code", "target"),
    "`error`, `elapsed_s`, `attempts`, `last_reason`, `hint`, `exit_code` (69), and `target` "
    "when a `--also` dependency timed out (with the gateway down too, it names the gateway)",
)
SIGNAL = Event(
    "gate.signal",
    "warning",
    ("signal", "exit_code", "hurried_by"),
    "`signal`, `exit_code` (130/143); + `hurried_by` when a second signal came "
    "during the shutdown (the gate then exits at once, with the first one's code)",
)
ERROR = Event(
    "gate.error",
    "error",
    ("error", "exit_code", "hint", "reason", "target"),
    "`error`, `exit_code` (64/70/78/126/127), `hint`, `reason` for 78, `target` when an "
    "`--also` dependency failed, and `exception` (the traceback, no local variables) for 70",
)
DEPENDENCY_READY = Event(
    "gate.dependency_ready",
    "info",
    ("target", "attempt", "elapsed_s", "detail"),
    "`target`, `attempt`, `elapsed_s`, `detail` (one per `--also` URL)",
)
STATE_UNAVAILABLE = Event(
    "gate.state_unavailable",
    "warning",
    ("path", "error"),
    "`path`, `error`: the state file `health` reads could not be created (no /dev/shm, a "
    "read-only or unwritable `GATE_STATE_FILE`); the wait goes on, and `health` checks the "
    "gateway as if no gate were waiting",
)

GATE_EVENTS: tuple[Event, ...] = (
    START,
    REQUEST,
    REPLY,
    ATTEMPT_FAILED,
    READY,
    REPLY_REJECTED,
    STATUS,
    EXEC,
    TIMEOUT,
    SIGNAL,
    ERROR,
    DEPENDENCY_READY,
    STATE_UNAVAILABLE,
)
# How a gate run ends (explain's outcomes): the events after which the gate writes nothing.
ENDINGS: tuple[Event, ...] = (EXEC, TIMEOUT, SIGNAL, ERROR)

# The simulator's (mt5-gate sim), for development and tests; every line has `component`.
SIM_STARTING = Event(
    "sim.starting",
    "info",
    ("start_delay_s",),
    "`start_delay_s`: binding only after it (`--start-delay`)",
)
SIM_LISTENING = Event(
    "sim.listening",
    "info",
    ("mode", "port", "reply_port", "pub_port", "curve", "dialect"),
    "`mode` (`zmq`, `not_zmq`, `rpyc`), `port`, `reply_port`, `pub_port` (the bound ports: 0 asked "
    "for any free one), `curve`, `dialect`",
)
SIM_REQUEST = Event(
    "sim.request",
    "info",
    ("n", "request"),
    "`n` (the request's number), `request` (cut to 120 characters)",
)
SIM_EMPTY_REQUEST = Event(
    "sim.empty_request", "info", (), "a two-socket bridge took an empty message"
)
SIM_REPLY_PEER = Event(
    "sim.reply_peer",
    "info",
    ("state",),
    "`state`: a PULL `connected` to the reply port, or `disconnected`",
)
SIM_REPLY_DROPPED = Event(
    "sim.reply_dropped",
    "warning",
    ("n", "messages", "reason"),
    "`n`, `messages`, `reason`: answers no PULL was there to take",
)
SIM_CLIENT_KEY = Event(
    "sim.client_key",
    "info",
    ("key", "accepted"),
    "`key` (its first 8 characters), `accepted` (`--curve-allow`)",
)
SIM_ORDER_ATTEMPT = Event(
    "sim.order_attempt",
    "warning",
    ("order", "action", "request"),
    "`order` (how many so far), `action`, `request`: a request the bridge would have traded on",
)
SIM_STOPPED = Event("sim.stopped", "info", ("reason",), "`reason` (`exit_after`)")

SIM_EVENTS: tuple[Event, ...] = (
    SIM_STARTING,
    SIM_LISTENING,
    SIM_REQUEST,
    SIM_EMPTY_REQUEST,
    SIM_REPLY_PEER,
    SIM_REPLY_DROPPED,
    SIM_CLIENT_KEY,
    SIM_ORDER_ATTEMPT,
    SIM_STOPPED,
)

BY_NAME = {event.name: event for event in (*GATE_EVENTS, *SIM_EVENTS)}
