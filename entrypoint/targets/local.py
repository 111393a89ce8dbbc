"""Targets inside the container itself: the Python version, a variable, a file, a directory."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import TYPE_CHECKING

from entrypoint.deadline import Deadline
from entrypoint.errors import AttemptFailed
from entrypoint.reasons import Reason

if TYPE_CHECKING:
    from entrypoint.targets.base import Context, Probe


def python(minimum: str, _context: Context) -> Probe:
    try:
        want = tuple(int(part) for part in minimum.split("."))
    except ValueError:
        raise ValueError("expected a version such as 3.11") from None

    def probe(_deadline: Deadline) -> str:
        version = ".".join(map(str, sys.version_info[:3]))
        if sys.version_info[: len(want)] < want:
            raise AttemptFailed("local", Reason.BAD_REPLY, f"Python {version} < {minimum}")
        return f"Python {version}"

    return probe


def env(name: str, context: Context) -> Probe:
    def probe(_deadline: Deadline) -> str:
        if not context.environ.get(name):
            raise AttemptFailed("local", Reason.BAD_REPLY, f"{name} is not set")
        return "set"  # never the value: it may be a secret

    return probe


def file(path: str, _context: Context) -> Probe:
    def probe(_deadline: Deadline) -> str:
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise AttemptFailed("local", Reason.BAD_REPLY, f"{path} is missing or unreadable")
        return "present"

    return probe


def writable(path: str, _context: Context) -> Probe:
    def probe(_deadline: Deadline) -> str:
        try:
            with tempfile.NamedTemporaryFile(dir=path):
                pass
        except OSError as exc:
            raise AttemptFailed("local", Reason.BAD_REPLY, f"{path}: {exc.strerror}") from None
        return "writable"

    return probe
