"""The value objects are NamedTuples (``health`` imports no ``dataclasses``): what that
changes, and what it must not.

A NamedTuple is immutable and has ``_replace``, as the frozen dataclasses were; it is also
a tuple. These tests pin the dataclass behaviour the code relies on: a request template
and a judgement compare, hash and print as their text and expression only (the parsed
body and the evaluating function are not part of their value), so the same settings built
twice are equal; nothing compares equal to a plain tuple where that would hide a bug; and
``_replace`` keeps the type.
"""

from __future__ import annotations

from typing import Any

import pytest

from entrypoint.commands import REGISTRY, Entry
from entrypoint.gateway.broker_states import STATES
from entrypoint.gateway.dialect import DEFAULT_DIALECT, Dialect
from entrypoint.gateway.endpoint import Endpoint
from entrypoint.gateway.judgement import Judgement, default_judgement, parse_judgement
from entrypoint.gateway.presets import PRESETS
from entrypoint.gateway.requests import RequestTemplate, parse_request
from entrypoint.log.events import GATE_EVENTS, START
from entrypoint.settings.config import GateSettings, settings_from_sources
from entrypoint.settings.options import ALL_OPTIONS, OPTION_GROUPS

VALUES: list[Any] = [
    ALL_OPTIONS[0],
    OPTION_GROUPS[0],
    GateSettings(host="gw"),
    REGISTRY[0],
    START,
    DEFAULT_DIALECT,
    DEFAULT_DIALECT.ping,
    DEFAULT_DIALECT.judgement,
    PRESETS["dwx"],
    STATES["ea_disabled"],
    GateSettings(host="gw").endpoint,
]


@pytest.mark.parametrize("value", VALUES, ids=lambda value: type(value).__name__)
def test_a_value_object_is_immutable_and_replaced_whole(value: Any) -> None:
    first = value._fields[0]
    with pytest.raises(AttributeError):
        setattr(value, first, getattr(value, first))
    copy = value._replace(**{first: getattr(value, first)})
    assert type(copy) is type(value)
    assert copy == value


def test_the_same_settings_built_twice_are_equal() -> None:
    """Each build makes a new default judgement (a new function) and parses the requests
    again; neither is part of the settings' value, as with the dataclasses."""
    sources: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"host": "gw"}, {}),
        ({"host": "gw", "ready_when": "connected"}, {}),
        ({"host": "gw", "bridge": "dwx"}, {}),
        ({"host": "gw"}, {"GATE_EXPECT_STATUS": "ok,alive", "GATE_PING_REQUEST": '{"a":"$now"}'}),
    ]
    for flags, environ in sources:
        first, again = (settings_from_sources(flags, environ) for _ in range(2))
        assert first.dialect.judgement.evaluate is not again.dialect.judgement.evaluate
        assert first == again
        assert not first != again  # noqa: SIM202 - __ne__ is defined apart from __eq__
        assert first.endpoint == again.endpoint


def test_a_judgement_is_its_expression() -> None:
    one, two = default_judgement(["OK"]), default_judgement(["OK"])
    assert (one == two, one != two, hash(one) == hash(two)) == (True, False, True)
    assert repr(one) == f"Judgement(expression={one.expression!r})"
    other = default_judgement(["PONG"])
    assert (one == other, one != other) == (False, True)
    written = parse_judgement(one.expression, "--ready-when")  # the same, by jmespath
    assert written == one
    assert one != (one.expression, one.evaluate)  # a tuple of the same fields is not one
    assert (one.expression, one.evaluate) != one  # the tuple's side
    assert one != Judgement(one.expression, one.evaluate)._replace(expression="other")


def test_a_request_template_is_its_text_and_never_shows_its_body(tmp_path: Any) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token-value\n")
    text = f'{{"action":"PING","token":"$file:{token}","at":"$now"}}'
    one, two = parse_request(text, "--ping-request"), parse_request(text, "--ping-request")
    assert one.body is not two.body
    assert (one == two, one != two, hash(one) == hash(two)) == (True, False, True)
    assert repr(one) == f"RequestTemplate(text={text!r}, is_json=True, secret=True)"
    assert "s3cret" not in repr(one)
    assert "s3cret" not in repr(DEFAULT_DIALECT._replace(ping=one))
    plain = parse_request("HEARTBEAT;", "--ping-request")
    assert plain == RequestTemplate("HEARTBEAT;", None, is_json=False)
    assert plain != ("HEARTBEAT;", None, False, False)
    assert ("HEARTBEAT;", None, False, False) != plain  # noqa: SIM300 - the tuple's side
    assert hash(plain) == hash(RequestTemplate("HEARTBEAT;", {"ignored": 1}, is_json=False))


def test_replace_keeps_what_was_not_replaced() -> None:
    """What ``dataclasses.replace`` did, as the code now writes it (``x._replace``)."""
    settings = settings_from_sources({"host": "gw", "bridge": "dwx"}, {})
    faster = settings._replace(connect_timeout_s=0.5, reply_timeout_s=0.5)
    assert isinstance(faster, GateSettings)
    assert (faster.bridge, faster.dialect, faster.transport) == (
        settings.bridge,
        settings.dialect,
        settings.transport,
    )
    assert faster.endpoint.connect_timeout_s == 0.5
    moved = faster.endpoint._replace(host="other", port=1)
    assert isinstance(moved, Endpoint)
    assert (moved.target, moved.dialect, moved.reply_port) == (
        "other:1",
        settings.dialect,
        settings.reply_port,
    )
    no_status = settings.dialect._replace(status=None)
    assert isinstance(no_status, Dialect)
    assert no_status.ping == settings.dialect.ping


def test_lookups_by_value_still_find_the_declared_object() -> None:
    """`in` and `==` compare field by field, as the dataclasses did."""
    assert all(event in GATE_EVENTS for event in GATE_EVENTS)
    assert len(set(GATE_EVENTS)) == len(GATE_EVENTS)
    assert (
        Entry("health", REGISTRY[2].summary, own_usage_errors=True, bare_call=True) == REGISTRY[2]
    )
    assert len({opt.flag for opt in ALL_OPTIONS}) > 1
