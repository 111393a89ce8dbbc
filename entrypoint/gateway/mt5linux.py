"""What the gate may ask a ``MetaTrader5`` module behind an rpyc classic server, and how
its answers become the one document ``--ready-when`` judges (``--bridge mt5linux``).

lucas-campagna/mt5linux (and gmag11/MetaTrader5-Docker, which runs it) serves the whole
``MetaTrader5`` package of the Windows Python under Wine to any rpyc client: whatever the
gate calls there happens for real, to the terminal the strategy will trade through. So the
gate's request is a list of calls from a read-only allow-list (``ALLOWED_CALLS``), checked
at start; anything else is refused with exit 64. ``initialize()`` with no arguments is the
one state-changing call, made by the transport itself, only while ``terminal_info()`` is
None (in the real server the module is attached to no terminal until some client has
called it), and at most one at a time per gate (``rpyc_transport``).

This module imports no rpyc: the settings read it to check a request, and the broker
states read the document's shape.
"""

from __future__ import annotations

import re
from typing import Any

# The read-only calls the gate may make (MetaQuotes' documentation: each returns a record
# or a tuple and changes nothing). ``initialize`` is not a request: see the docstring.
ALLOWED_CALLS = ("terminal_info", "account_info", "last_error", "version")
DEFAULT_REQUEST = " ".join(ALLOWED_CALLS)
# Never: shutdown detaches every client of that server (the strategy's included), login
# and initialize(...) with arguments log in or launch a terminal, the rest trade or change
# the terminal's Market Watch and subscriptions. Named in refusals and docs.
FORBIDDEN_EXAMPLES = (
    "shutdown",
    "login",
    "initialize(path=...)",
    "order_send",
    "order_check",
    "symbol_select",
    "market_book_add",
)
# The document's keys, always all present (null when not read).
DOCUMENT_KEYS = (*ALLOWED_CALLS, "initialize")
# The fields read from each record: those the judgement uses, and a few that say which
# terminal and account mode it is. Never the account's name, server, balance or equity:
# the document is logged.
TERMINAL_FIELDS = ("connected", "trade_allowed", "tradeapi_disabled", "build")
ACCOUNT_FIELDS = ("trade_allowed", "trade_expert", "trade_mode")
# Ready = the terminal can trade now (JMESPath; the flags compared, since && takes 0 as
# true and MetaTrader5 gives booleans).
READY_WHEN = (
    "terminal_info.connected == `true` && terminal_info.trade_allowed == `true` && "
    "terminal_info.tradeapi_disabled == `false` && account_info.trade_allowed == `true` && "
    "account_info.trade_expert == `true`"
)
# last_error() codes (MetaQuotes' table): no IPC link to a terminal yet, and an
# initialize() that timed out while the terminal starts.
IPC_NOT_CONNECTED = -10004
IPC_TIMEOUT = -10005
IPC_INIT_FAILED = -10003
# What the document's "initialize" says: null when it was not needed (a terminal was
# attached), else the outcome of the gate's one call.
INITIALIZE_IN_FLIGHT = "in_flight"

_CALL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_calls(text: str) -> tuple[str, ...]:
    """The calls a request names (spaces or commas between them); ValueError saying which
    is not allowed. An empty request is refused too: it would read nothing."""
    words = [word for word in re.split(r"[\s,]+", text.strip()) if word]
    if not words:
        raise ValueError(f"names no call; allowed: {', '.join(ALLOWED_CALLS)}")
    for word in words:
        if word not in ALLOWED_CALLS:
            shown = word if _CALL.fullmatch(word) and len(word) <= 40 else "a call with arguments"
            raise ValueError(
                f"{shown!r} is not a read-only MetaTrader5 call the gate makes "
                f"(allowed: {', '.join(ALLOWED_CALLS)}; never "
                f"{', '.join(FORBIDDEN_EXAMPLES)})"
            )
    return tuple(dict.fromkeys(words))


def request_refusal(request: Any) -> str | None:
    """Why a configured request (a ``RequestTemplate``) may not be sent over rpyc, or None:
    only a text list of allowed calls is."""
    if request.is_json:
        return (
            f"the rpyc transport reads MetaTrader5 calls, not a JSON request "
            f"(a text list of {', '.join(ALLOWED_CALLS)})"
        )
    try:
        parse_calls(request.text)
    except ValueError as exc:
        return str(exc)
    return None


def is_document(reply: Any) -> bool:
    """Whether ``reply`` is the document this module builds (judged by its states)."""
    return isinstance(reply, dict) and tuple(reply) == DOCUMENT_KEYS


def plain(value: Any) -> Any:
    """A value read over rpyc as JSON can hold it; anything that is not a plain value
    (a netref the server sent instead) becomes None: never called, never logged."""
    if value is None or type(value) in (bool, int, float, str):
        return value if type(value) is not str else value[:200]
    if type(value) is tuple and len(value) <= 8:
        return [plain(item) for item in value]
    return None


def record(fields: tuple[str, ...], values: Any) -> dict[str, Any] | None:
    """A record's fields by name, from the plain tuple ``attrgetter`` returned."""
    if type(values) is not tuple or len(values) != len(fields):
        return None
    return {name: plain(value) for name, value in zip(fields, values, strict=True)}


def empty_document() -> dict[str, Any]:
    return dict.fromkeys(DOCUMENT_KEYS)
