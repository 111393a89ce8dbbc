from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts without GATE_*/GATEWAY_* variables and with default logging."""
    import os

    for key in list(os.environ):
        if key.startswith(("GATE_", "GATEWAY_")) or key == "NO_COLOR":
            monkeypatch.delenv(key)
    yield
    structlog.reset_defaults()
