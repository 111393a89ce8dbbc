"""Broker states in words: why a bridge that answers says it cannot trade, and what to do.

A bridge that answers but cannot trade says so in its own words: darwinex/dwx-zeromq-
connector replies with the first failed permission check (``TRADING_IS_NOT_ALLOWED__
ABORTED_COMMAND``...), khramkov/MQL5-JSON-API's ACCOUNT reply carries ``trading_allowed``
and ``bot_trading`` as 0 or 1. Each such state has a name, the place in the terminal where
it is fixed, and a section of docs/TROUBLESHOOTING.md (named by the command that prints
it, ``reasons.see``). The log keeps the bridge's words; the state is added beside them.
"""

from collections.abc import Iterator
from typing import Any, NamedTuple

from entrypoint.reasons import see


class BrokerState(NamedTuple):
    name: str
    meaning: str
    fix: str  # what to do in the terminal

    @property
    def anchor(self) -> str:
        return see(f"broker-state-{self.name.replace('_', '-')}")

    def advice(self) -> str:
        return f"{self.meaning}: {self.fix}. See {self.anchor}"


STATES: dict[str, BrokerState] = {
    state.name: state
    for state in (
        BrokerState(
            "trading_not_allowed",
            "the terminal does not allow this EA to trade",
            "press AutoTrading (Algo Trading in MT5) in the terminal's toolbar so it is "
            'green, and tick "Allow live trading" on the Common tab of the EA\'s '
            "properties (F7 on the chart)",
        ),
        BrokerState(
            "ea_disabled",
            "Expert Advisors are disabled in the terminal",
            "press AutoTrading (Algo Trading) in the toolbar, and check Tools > Options > "
            "Expert Advisors does not disable them on account or profile change",
        ),
        BrokerState(
            "trade_context_busy",
            "the terminal's trade context is busy with another EA's or a manual order",
            "usually passes within seconds; if it stays, "
            "find the EA or script that holds it and stop it",
        ),
        BrokerState(
            "dlls_disabled",
            "the EA may not call DLLs (libzmq is one)",
            'tick "Allow DLL imports" on the Common tab of the EA\'s properties (and in '
            "Tools > Options > Expert Advisors), then reattach the EA",
        ),
        BrokerState(
            "libs_disabled",
            "the EA may not import external libraries",
            'tick "Allow imports of external experts" in the EA\'s properties (MT4), '
            "then reattach the EA",
        ),
        BrokerState(
            "no_broker_connection",
            "the terminal is not connected to the broker",
            "check the terminal's login (File > Login to Trade Account), the server "
            "name, and the connection status at the bottom right of the terminal",
        ),
        BrokerState(
            "algo_trading_off",
            "the terminal's Algo Trading is off",
            "press Algo Trading in the terminal's toolbar so it is green "
            "(TERMINAL_TRADE_ALLOWED is 0)",
        ),
        BrokerState(
            "not_logged_in",
            "the terminal is not logged in to a trade account",
            "log in (File > Login to Trade Account; in lprett/mt5linux set MT5_LOGIN, "
            "MT5_SERVER and MT5_PASSWORD) with the account's trading password, check the "
            "server name, and wait for the connection status at the bottom right of the "
            "terminal to show the ping",
        ),
        BrokerState(
            "no_ea_attached",
            "no EA attached to the broker: it holds the request for a worker, then drops it",
            "attach the bridge's EA (PyMetaTrader's MTServer) to a chart with Algo Trading "
            "on; its Server_Request_URL must reach the broker's worker port (22990), where "
            "it says READY. The broker's log shows 'New work connected' when it does",
        ),
        BrokerState(
            "ea_trading_off",
            "this EA is not allowed to trade",
            'tick "Allow Algo Trading" on the Common tab of the EA\'s properties (F7 on '
            "the chart) and reattach it (MQL_TRADE_ALLOWED is 0)",
        ),
        # The MetaTrader5 package behind an rpyc server (--bridge mt5linux): the document
        # the rpyc transport builds (gateway/mt5linux.py) names these.
        BrokerState(
            "terminal_starting",
            "the MetaTrader5 package is still attaching to the terminal (initialize() "
            "runs, or timed out with -10005 IPC timeout): normal in a Wine container's "
            "first minutes",
            "keep waiting; if it lasts, open the container's VNC and check terminal64.exe "
            "runs and shows no dialog",
        ),
        BrokerState(
            "terminal_not_attached",
            "the MetaTrader5 package is attached to no running terminal (-10004 no IPC "
            "connection, -10003 terminal not found)",
            "keep waiting while the container starts; if it lasts, check terminal64.exe "
            "runs in the same Wine prefix as the rpyc server",
        ),
        BrokerState(
            "api_disabled",
            "the terminal refuses the Python API (TERMINAL_TRADEAPI_DISABLED)",
            'untick "Disable automatic trading via external Python API" in Tools > '
            "Options > Expert Advisors",
        ),
        BrokerState(
            "investor_login",
            "the account is logged in read-only (investor password: ACCOUNT_TRADE_ALLOWED "
            "is false)",
            "log in with the account's master (trading) password",
        ),
        BrokerState(
            "account_expert_trading_off",
            "the broker does not let expert advisors trade this account "
            "(ACCOUNT_TRADE_EXPERT is false)",
            "ask the broker to allow algorithmic trading on the account, or use one that does",
        ),
    )
}

# The words darwinex/dwx-zeromq-connector's EA answers with, each `<WORD>__ABORTED_COMMAND`.
_WORDS = {
    "TRADING_IS_NOT_ALLOWED": "trading_not_allowed",
    "EA_IS_DISABLED": "ea_disabled",
    "TRADE_CONTEXT_BUSY": "trade_context_busy",
    "DLLS_DISABLED": "dlls_disabled",
    "LIBS_DISABLED": "libs_disabled",
    "NO_BROKER_CONNECTION": "no_broker_connection",
}
# Flags a reply may carry as 0/1 or false/true (khramkov/MQL5-JSON-API's ACCOUNT reply).
_FLAGS = {"trading_allowed": "algo_trading_off", "bot_trading": "ea_trading_off"}
_MAX_NODES = 2000  # a reply is small; a hostile one is not walked without bound
# An MT5 account record as the EAs send it (ACCOUNT_SERVER and ACCOUNT_CURRENCY side by
# side: ejtraderMT, MQL5-JSON-API, PyMetaTrader); with no account logged in, the strings
# are empty (JAson writes null) and PyMetaTrader's id (ACCOUNT_LOGIN) is 0.
_ACCOUNT_KEYS = frozenset({"server", "currency"})
_LOGIN_KEYS = ("id", "login")


def broker_state(reply: Any) -> BrokerState | None:
    """The state a reply names, if it names one."""
    if isinstance(reply, dict) and "terminal_info" in reply:
        # Only then: a healthcheck of another bridge never imports the mt5linux module.
        from entrypoint.gateway import mt5linux  # noqa: PLC0415

        if mt5linux.is_document(reply):
            name = _mt5_state(reply, mt5linux)
            return STATES[name] if name else None
    for node in _walk(reply):
        if isinstance(node, str):
            upper = node.upper()
            for word, name in _WORDS.items():
                if word in upper:
                    return STATES[name]
        elif isinstance(node, dict):
            if _logged_out(node):  # before its flags: no account means no permission either
                return STATES["not_logged_in"]
            for key, value in node.items():
                flag = _FLAGS.get(str(key).lower())
                if flag is not None and _says_off(value):
                    return STATES[flag]
    return None


def _logged_out(record: dict[Any, Any]) -> bool:
    if not {str(key).lower() for key in record} >= _ACCOUNT_KEYS:
        return False
    fields = {str(key).lower(): value for key, value in record.items()}
    empty_server = fields["server"] is None or (
        isinstance(fields["server"], str) and not fields["server"].strip()
    )
    no_login = any(key in fields and str(fields[key]).strip() in ("0", "") for key in _LOGIN_KEYS)
    return empty_server or no_login


def _says_off(value: Any) -> bool:
    return (
        value is False
        or (isinstance(value, int | float) and not isinstance(value, bool) and value == 0)
        or (isinstance(value, str) and value.strip().lower() in ("0", "false"))
    )


def _walk(node: Any) -> Iterator[Any]:
    stack, seen = [node], 0
    while stack and seen < _MAX_NODES:
        current = stack.pop()
        seen += 1
        yield current
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def _mt5_state(doc: dict[str, Any], mt5linux: Any) -> str | None:
    """Why a MetaTrader5 document says the terminal cannot trade, the first cause first."""
    terminal, account = doc["terminal_info"], doc["account_info"]
    error = doc["last_error"]
    code = error[0] if isinstance(error, list) and error else None
    if not isinstance(terminal, dict):
        if doc["initialize"] == mt5linux.INITIALIZE_IN_FLIGHT or code == mt5linux.IPC_TIMEOUT:
            return "terminal_starting"
        return "terminal_not_attached"
    checks = (
        (account is None, "not_logged_in"),
        (terminal.get("connected") is False, "no_broker_connection"),
        (terminal.get("tradeapi_disabled") is True, "api_disabled"),
        (terminal.get("trade_allowed") is False, "algo_trading_off"),
        (isinstance(account, dict) and account.get("trade_allowed") is False, "investor_login"),
        (
            isinstance(account, dict) and account.get("trade_expert") is False,
            "account_expert_trading_off",
        ),
    )
    return next((name for failed, name in checks if failed), None)
