"""The gate as a process: stop signals (signals), the file-descriptor limit (fdlimit),
fail-closed bookkeeping (failclosed), the state file health reads (gatestate), and the
exec into the runner (handoff).
"""
