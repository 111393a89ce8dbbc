"""The original live-gateway probe, kept for people who know it; now `mt5-gate probe`.

    python3 -m scripts.probe_live_gateway        # from the repository root
    python3 scripts/probe_live_gateway.py

Configured by GATEWAY_HOST and GATEWAY_PORT (and every other variable `mt5-gate probe`
reads). Exit 0 when TCP and PING pass, else 1. Importing this module does nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> int:
    # Run from a checkout without installing: the package is the checkout's.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        from entrypoint.cli import main as gate_main  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        print(
            f"probe_live_gateway: {exc.name} is not installed; run it with the project's "
            "venv (.venv/bin/python, created by `make test`) or `pip install .`",
            file=sys.stderr,
        )
        return 1
    return gate_main(["probe", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
