"""The recipes of docs/BRIDGES.md as tests run them: each ``# KIND: NAME`` env block read
verbatim, pointed at a stand-in (only the host, ports and the secret's path change), and
the stand-in's event lines read back.

Shared by tests/test_wild_bridges.py (every recipe) and the tests of single bridges
(tests/test_ejtrader.py, tests/test_pymetatrader.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.standins.client import StandIn
from tests.support.helpers import REPO, base_env
from tests.support.processes import StartStandIn

DOC_TOKEN_PATH = "/run/secrets/bridge_token"
TOKEN = "tok-3f9a1c77e2-wolfe"


def blocks(kind: str) -> dict[str, dict[str, str]]:
    """The ``# KIND: NAME`` env blocks of docs/BRIDGES.md, as variables."""
    text = (REPO / "docs" / "BRIDGES.md").read_text()
    found: dict[str, dict[str, str]] = {}
    for block in re.findall(r"```env\n(.*?)```", text, re.DOTALL):
        lines = block.strip().splitlines()
        if lines[0].startswith(f"# {kind}: "):
            found[lines[0].split(": ", 1)[1].strip()] = dict(
                line.split("=", 1) for line in lines[1:]
            )
    return found


RECIPES = blocks("recipe")


def start_ejtrader(standin: StartStandIn, *extra: str) -> tuple[StandIn, dict[str, str]]:
    """ejtraderMT's EA stand-in, and the port that points the recipe at it."""
    ea = standin("ejtrader_ea", "--port", "0", *extra)
    return ea, {"GATEWAY_PORT": str(ea.ports["system"])}


def start_pymetatrader(standin: StartStandIn, *extra: str) -> tuple[StandIn, dict[str, str]]:
    """PyMetaTrader's broker and EA stand-in, and the ports that point the recipe at it."""
    broker = standin(
        "pymetatrader_broker",
        *("--client-port", "0", "--worker-port", "0", "--pub-port", "0", "--xsub-port", "0"),
        *extra,
    )
    return broker, {
        "GATEWAY_PORT": str(broker.ports["client"]),
        "GATEWAY_PUB_PORT": str(broker.ports["pub"]),
    }


def recipe_env(
    recipe: str, ports: dict[str, str], tmp_path: Path, token: str = TOKEN, **extra: str
) -> dict[str, str]:
    token_file = tmp_path / "bridge_token"
    token_file.write_text(token + "\n")
    variables = {
        key: value.replace(DOC_TOKEN_PATH, str(token_file))
        for key, value in RECIPES[recipe].items()
    }
    variables.update(GATEWAY_HOST="127.0.0.1", **ports, **extra)
    return base_env(**variables)


def events_of(ea: StandIn, name: str) -> list[dict[str, Any]]:
    return [e for e in ea.events() if e.get("event") == name]


def failures(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "gate.attempt_failed"]
