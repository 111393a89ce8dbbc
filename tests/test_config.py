"""Configuration: flags beat variables, defaults are documented, bad values are usage errors."""

from __future__ import annotations

import pytest

from entrypoint.commands import wait
from entrypoint.errors import EXIT_USAGE, UsageError
from entrypoint.settings.config import GateSettings, settings_from_sources
from entrypoint.settings.options import declared, options_of


def test_defaults_match_the_documented_interface() -> None:
    """With only the host given, every default is the one the issue and README name."""
    settings = settings_from_sources({}, {"GATEWAY_HOST": "gw"})
    assert settings == GateSettings(host="gw")
    assert (
        settings.port,
        settings.timeout_s,
        settings.connect_timeout_s,
        settings.reply_timeout_s,
    ) == (5555, 600.0, 2.0, 5.0)
    assert settings.expect_status == frozenset({"OK", "PONG", "OPERATIONAL"})
    assert (settings.log_format, settings.log_level) == ("auto", "info")


def test_flag_beats_environment_variable() -> None:
    """A flag wins over its variable; the variable wins over the default."""
    env = {"GATEWAY_HOST": "from-env", "GATEWAY_PORT": "6000", "GATE_TIMEOUT": "30"}
    settings = settings_from_sources({"host": "from-flag", "timeout_s": "0.5"}, env)
    assert (settings.host, settings.port, settings.timeout_s) == ("from-flag", 6000, 0.5)


def test_empty_variable_counts_as_unset() -> None:
    """GATE_TIMEOUT= (empty, as compose writes an unset ${VAR}) falls back to the default."""
    settings = settings_from_sources({}, {"GATEWAY_HOST": "gw", "GATE_TIMEOUT": ""})
    assert settings.timeout_s == 600.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("port", "0"),
        ("port", "65536"),
        ("port", "55x"),
        ("port", "-1"),
        ("timeout_s", "abc"),
        ("timeout_s", "-1"),
        ("timeout_s", "nan"),
        ("timeout_s", "inf"),
        ("connect_timeout_s", "0"),
        ("reply_timeout_s", "0"),
        ("backoff_initial_s", "0"),
        ("expect_status", " , "),
        ("log_format", "xml"),
        ("log_level", "loud"),
        ("host", ""),
        ("host", "tcp://gw:5555"),
        ("host", "gw:5555"),
        ("host", "[gw]"),
    ],
)
def test_invalid_value_names_flag_and_variable(field: str, value: str) -> None:
    """Every invalid value is a UsageError (exit 64) naming both the flag and its variable."""
    option = declared(field)
    flags = {"host": "gw", field: value}
    with pytest.raises(UsageError) as caught:
        settings_from_sources(flags, {}, options_of(*wait.GROUPS))
    assert caught.value.exit_code == EXIT_USAGE
    assert f"{option.flag} / {option.env}" in caught.value.message
    assert option.env in caught.value.message
    assert "\n" not in caught.value.message


def test_invalid_environment_value_says_where_it_came_from() -> None:
    """An invalid variable is reported with the variable as its source."""
    with pytest.raises(UsageError, match=r"GATE_REPLY_TIMEOUT \(GATE_REPLY_TIMEOUT\): 'soon'"):
        settings_from_sources({}, {"GATEWAY_HOST": "gw", "GATE_REPLY_TIMEOUT": "soon"})


def test_missing_host_is_a_usage_error() -> None:
    """The host has no default."""
    with pytest.raises(UsageError, match="--host / GATEWAY_HOST is required"):
        settings_from_sources({}, {})


def test_backoff_max_below_initial_is_rejected() -> None:
    """--backoff-max smaller than --backoff-initial cannot be honoured."""
    with pytest.raises(UsageError, match="--backoff-max / GATE_BACKOFF_MAX"):
        settings_from_sources({"host": "gw", "backoff_initial_s": "5", "backoff_max_s": "1"}, {})


@pytest.mark.parametrize(
    ("given", "host", "target"),
    [
        ("gateway", "gateway", "gateway:5555"),
        ("172.19.141.255", "172.19.141.255", "172.19.141.255:5555"),
        ("::1", "::1", "[::1]:5555"),
        ("[fe80::1]", "fe80::1", "[fe80::1]:5555"),
    ],
)
def test_hosts_accept_names_and_both_ip_families(given: str, host: str, target: str) -> None:
    """Names, IPv4 and IPv6 literals (bracketed or not) are accepted."""
    settings = settings_from_sources({"host": given}, {})
    assert (settings.host, settings.target) == (host, target)


def test_durations_take_decimal_seconds() -> None:
    """Durations such as 0.5 are accepted; 0 disables the overall deadline."""
    settings = settings_from_sources(
        {"host": "gw", "connect_timeout_s": "0.25", "timeout_s": "0"}, {}
    )
    assert (settings.connect_timeout_s, settings.timeout_s) == (0.25, 0.0)


def test_expect_status_is_case_insensitive_list() -> None:
    """--expect-status is split on commas, trimmed and upper-cased."""
    settings = settings_from_sources({"host": "gw", "expect_status": " ok, Ready ,"}, {})
    assert settings.expect_status == frozenset({"OK", "READY"})
