"""The gateway's JSON protocol: the requests we send and how a reply is judged.

Replies are untrusted input: every way a decode can fail (invalid UTF-8, invalid JSON,
nesting deep enough to raise RecursionError) is turned into a ``bad_reply`` failure.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from entrypoint.logs import untrusted
from entrypoint.reasons import AttemptFailed, Reason

SOURCE = "mt5-gate"


def ping_request() -> bytes:
    timestamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    return json.dumps({"action": "PING", "timestamp": timestamp, "source": SOURCE}).encode()


def status_request() -> bytes:
    return b'{"action": "STATUS"}'


def decode_reply(frames: list[bytes]) -> dict[str, Any]:
    """The reply as a JSON object, or AttemptFailed (``protocol`` or ``bad_reply``)."""
    if len(frames) != 1:
        raise AttemptFailed("reply", Reason.PROTOCOL,
                            f"multipart reply with {len(frames)} frames; expected one JSON frame")
    raw = frames[0]
    try:
        reply = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise AttemptFailed("reply", Reason.BAD_REPLY,
                            f"reply is not UTF-8: {untrusted(raw[:80])}") from None
    except (ValueError, RecursionError):
        raise AttemptFailed("reply", Reason.BAD_REPLY,
                            f"reply is not JSON: {untrusted(raw[:80])}") from None
    if not isinstance(reply, dict):
        raise AttemptFailed("reply", Reason.BAD_REPLY,
                            f"reply is JSON but not an object: {untrusted(reply, 80)}")
    return reply


def check_status(reply: dict[str, Any], accepted: frozenset[str]) -> None:
    """Accept a reply without ``status``, or one whose status is in ``accepted``."""
    if "status" not in reply:
        return
    status = reply["status"]
    if not isinstance(status, str) or status.upper() not in accepted:
        raise AttemptFailed("reply", Reason.BAD_REPLY,
                            f"status {untrusted(status, 80)} is not one of "
                            f"{','.join(sorted(accepted))}")
