"""One module per CLI command, each with ``run(args, command, environ) -> int``.

``cli`` parses the command line and dispatches here; each command owns its own rules (its
settings, its output, its exit codes). What they share is building validated settings.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping

from entrypoint.config import CURVE_OPTIONS, GateSettings, Option, settings_from_sources


def settings_for(args: argparse.Namespace, environ: Mapping[str, str],
                 options: tuple[Option, ...]) -> GateSettings:
    """Validated settings from flags and environment, CURVE keys included."""
    flags = vars(args)
    settings = settings_from_sources(flags, environ, options)
    if not any(flags.get(opt.field) is not None or environ.get(opt.env)
               for opt in CURVE_OPTIONS):
        return settings
    from entrypoint.curve import curve_from_sources  # noqa: PLC0415 - only when CURVE is used

    return dataclasses.replace(settings, curve=curve_from_sources(flags, environ))
