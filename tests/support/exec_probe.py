"""A runner for the exec tests: reports its PID, argv and environment as one JSON line."""

import json
import os
import sys

report = {
    "pid": os.getpid(),
    "argv": sys.argv[1:],
    "env_marker": os.environ.get("EXEC_PROBE_MARKER"),
    "env_keys": sorted(os.environ),
}
print(f"ready pid={os.getpid()}", flush=True)
print(json.dumps(report), flush=True)
