"""How a decoded reply is judged: a JMESPath expression, and the default judgement.

Readiness is a JMESPath expression evaluated on the reply (``--ready-when``); truthy, less
the number 0, means ready. Without one, the default judgement ``default_ready`` reads the
verdict keys bridges use (``status``, ``ok``, ``error``, ``result``...) whatever their case.

The default judgement is shown as the JMESPath expression it is equivalent to (``--ready-when``
can build on it), but evaluated directly: jmespath is imported only for an expression
someone wrote (``--ready-when``, a preset's), which costs a healthcheck nothing otherwise.
"""

import json
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from entrypoint.errors import UsageError
from entrypoint.gateway.broker_states import broker_state

# The default judgement (no --ready-when): ``default_ready`` below, with the accepted
# statuses from --expect-status. It is a JMESPath function, so --ready-when can build on it.
DEFAULT_JUDGEMENT = "default_ready(@, {statuses})"


# Deeper than any readiness test needs, and far from Python's recursion limit (jmespath
# parses and searches recursively, a few frames per level): a deeper expression is a
# usage error, not a RecursionError (exit 70).
MAX_EXPRESSION_DEPTH = 64
_OPTIONS: list[Any] = []  # jmespath.Options with the functions below, made on first use


def _options() -> Any:
    """jmespath's options with ``upper()`` and ``lower()``, so that an expression can compare
    statuses whatever their case, and ``default_ready(@, statuses)``, the default judgement."""
    if _OPTIONS:
        return _OPTIONS[0]
    import jmespath.functions  # noqa: PLC0415 - see the module's docstring

    class _Functions(jmespath.functions.Functions):
        @jmespath.functions.signature({"types": []}, {"types": ["array"]})
        def _func_default_ready(self, reply: Any, statuses: list[Any]) -> bool:
            return default_ready(reply, statuses)

        @jmespath.functions.signature({"types": ["string"]})
        def _func_upper(self, text: str) -> str:
            return text.upper()

        @jmespath.functions.signature({"types": ["string"]})
        def _func_lower(self, text: str) -> str:
            return text.lower()

    _OPTIONS.append(jmespath.Options(custom_functions=_Functions()))
    return _OPTIONS[0]


# --- the default judgement -------------------------------------------------------------

# Top-level keys that carry a bridge's verdict, compared whatever their case (bridges in
# C# and MQL5 write Status, OK, Error).
_STATUS_KEYS = frozenset({"status"})
_YES_NO_KEYS = frozenset({"ok", "success"})
_ERROR_KEYS = frozenset({"error", "errors", "err"})
_RESULT_KEYS = frozenset({"result"})
_SAYS_NO = frozenset({"false", "0", "no"})
# Words that mean "no" as a whole status or result: never accepted as a result, never
# suggested as the status to accept (probe's fix line).
REFUSING_WORDS = frozenset(
    {
        "ERROR",
        "ERR",
        "FAIL",
        "FAILED",
        "FAILURE",
        "DENIED",
        "UNAUTHORIZED",
        "UNAUTHORISED",
        "FORBIDDEN",
        "INVALID",
        "REJECTED",
        "UNKNOWN",
        "MAINTENANCE",
        "DISCONNECTED",
        "DOWN",
        "BUSY",
        "OFFLINE",
        "DEAD",
        "EXCEPTION",
        "TIMEOUT",
        "NOK",
        "KO",
        "NOT",
        "NO",
        "BAD",
        "WRONG",
        "MISSING",
        "UNAVAILABLE",
        "STOPPED",
        "CLOSED",
        "HALTED",
        "REFUSED",
        "ABORTED",
        "EXPIRED",
        "DISABLED",
        "UNSUPPORTED",
        "NONE",
        "NULL",
        "FALSE",
    }
)


def default_ready(reply: Any, statuses: Iterable[Any]) -> bool:
    """The default judgement, exactly as docs/BRIDGES.md states it.

    Ready when the reply is a JSON object, and among its top-level keys (any case):
    every ``status`` is in ``statuses`` (as text, case-insensitively); no ``ok`` or
    ``success`` says no (false, 0, "false", "0", "no"); every ``error``, ``errors`` and
    ``err`` is null, false or empty; no ``result`` is false or a refusing word; and
    nothing in it names a broker state (``broker_states``: the bridge cannot trade)."""
    if not isinstance(reply, dict) or refusing_key(reply) is not None:
        return False
    if broker_state(reply) is not None:  # the bridge says it cannot trade
        return False
    accepted = {_as_text(status).upper() for status in statuses}
    return all(
        _as_text(value).upper() in accepted
        for key, value in reply.items()
        if str(key).lower() in _STATUS_KEYS
    )


def refusing_key(reply: dict[Any, Any]) -> Any:
    """The first top-level key whose value says no (``ok``/``success`` false or 0, a
    non-empty ``error``/``errors``/``err``, a ``result`` that is false or a refusing
    word), whatever its case; None when none does. Shared by the default judgement and
    probe's fix line, so the two never disagree on what a refusal is."""
    for key, value in reply.items():
        name = str(key).lower()
        if (
            (name in _YES_NO_KEYS and _says_no(value))
            or (name in _ERROR_KEYS and not _is_empty(value))
            or (
                name in _RESULT_KEYS
                and (
                    value is False
                    or (isinstance(value, str) and value.strip().upper() in REFUSING_WORDS)
                )
            )
        ):
            return key
    return None


def _as_text(value: Any) -> str:
    """A status as text: a string as it is, anything else as JSON writes it (200, true)."""
    return value if isinstance(value, str) else json.dumps(value)


def _says_no(value: Any) -> bool:
    if value is False:
        return True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value == 0
    return isinstance(value, str) and value.strip().lower() in _SAYS_NO


def _is_empty(value: Any) -> bool:
    """null, false, "", [] or {}; the number 0 is an error code, not "no error"."""
    return value is None or value is False or (isinstance(value, (str, list, dict)) and not value)


class Judgement(NamedTuple):
    """A JMESPath expression on the reply: truthy means ready. Truthy is JMESPath's sense
    (anything but false, null, "", [] and {}) less the number 0: bridges written in MQL5
    send booleans as 0/1, and ``GATE_READY_WHEN=connected`` must not pass on
    ``{"connected": 0}``. Failing closed here costs a wait; failing open starts a strategy
    against a disconnected terminal.

    A judgement is its expression: ``evaluate`` (the compiled expression, or the default
    judgement's function) is not compared, hashed or shown, so the same expression built
    twice is one judgement. ``==`` is false for anything but another Judgement, a tuple of
    the same fields included."""

    expression: str
    evaluate: Callable[[Any], Any]

    def __eq__(self, other: object) -> bool:
        # False, not NotImplemented, for another type: a plain tuple's == would answer.
        return type(other) is Judgement and self.expression == other.expression

    def __ne__(self, other: object) -> bool:  # tuple's own != would compare the function
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((self.expression,))

    def __repr__(self) -> str:
        return f"Judgement(expression={self.expression!r})"

    def accepts(self, reply: Any) -> bool:
        return is_truthy(self.evaluate(reply))


def is_truthy(value: Any) -> bool:
    """Whether a judgement's value means ready (see ``Judgement``)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int, float)):
        return value != 0
    return value not in ("", [], {})


def default_expression(statuses: Iterable[str]) -> str:
    """The default judgement for these accepted statuses (a JSON literal: any text is safe)."""
    listed = json.dumps(sorted(statuses), separators=(",", ":")).replace("`", "\\`")
    return DEFAULT_JUDGEMENT.format(statuses=f"`{listed}`")


def default_judgement(statuses: Iterable[str]) -> Judgement:
    """``default_expression(statuses)``, evaluated without JMESPath: what that expression
    computes, ``default_ready`` on the reply and the sorted statuses."""
    accepted = sorted(statuses)
    return Judgement(default_expression(accepted), lambda reply: default_ready(reply, accepted))


def parse_judgement(expression: str, where: str) -> Judgement:
    import jmespath  # noqa: PLC0415 - see the module's docstring
    import jmespath.exceptions  # noqa: PLC0415

    too_deep = (
        f"{where}: the JMESPath expression is nested more than {MAX_EXPRESSION_DEPTH} "
        "levels deep (a readiness test needs a few)"
    )
    try:
        compiled = jmespath.compile(expression)
    except RecursionError:  # jmespath's parser recurses once per level of nesting
        raise UsageError(too_deep) from None
    except jmespath.exceptions.JMESPathError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{where}: not a valid JMESPath expression: {first}") from None
    if _depth(compiled.parsed) > MAX_EXPRESSION_DEPTH:  # its search would recurse as deep
        raise UsageError(too_deep)
    options = _options()
    return Judgement(expression, lambda reply: compiled.search(reply, options=options))


def _depth(tree: Any) -> int:
    """How deep jmespath's syntax tree goes, counted without recursion (a tree may be
    deeper than Python's stack: ``a.a.a...`` compiles flat but is searched recursively)."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend(
            (child, depth + 1) for child in node.get("children", ()) if isinstance(child, dict)
        )
    return deepest
