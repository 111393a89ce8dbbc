"""``python -m entrypoint`` and the ``mt5-gate`` console script.

The stop handlers go in before anything heavy is imported (structlog and pyzmq take ~80 ms):
as PID 1, a SIGTERM that arrives before a handler exists is ignored, and Docker then waits
out its whole grace period before it kills the container.
"""

from __future__ import annotations

import sys


def run() -> int:
    from entrypoint.errors import GateSignal  # noqa: PLC0415 - light: before the heavy ones
    from entrypoint.signals import install_stop_handlers  # noqa: PLC0415

    install_stop_handlers()
    try:
        from entrypoint.cli import main  # noqa: PLC0415
    except GateSignal as sig:  # stopped while starting: logging is not configured yet
        sys.stderr.write(f'{{"level": "warning", "event": "gate.signal", "signal": '
                         f'"{sig.name}", "exit_code": {sig.exit_code}}}\n')
        return sig.exit_code
    return main()


if __name__ == "__main__":
    sys.exit(run())
