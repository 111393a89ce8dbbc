"""Every time bound the tests use, named, with the reason for its size.

The suite has two kinds of time bound, and only two:

* **Hang guards** (the constants below): how long a test waits for something that normally
  happens in well under a second or two: a log event, a process exit, a CLI command, a podman
  call. They never judge speed; they turn a hang into a failure that shows the process's last
  output (``Proc.wait`` sends SIGABRT first, so a hung Python prints its stacks). Each is at
  least 10x the slowest time seen with both cores busy running a competing busy loop, so a
  loaded CI machine never trips one. pytest-timeout (60 s per test in pyproject.toml, more
  where a module says so) is the backstop behind them.

* **Behaviour bounds**: an assertion that one thing happened well before another thing that is
  far away in time, for example "the dropped connection was noticed at ~0.1 s, not at the 5 s
  reply timeout". Each has a comment next to it naming the two times it separates; the margin
  is the gap between them, never a speed figure. How fast the gate is lives in
  ``benchmarks/`` (a table of medians), not in assertions.

A gate started with ``--timeout N`` is waited for with ``after_deadline(N)``: it exits at N s
plus its start-up, and the slack covers start-up and a last attempt on a loaded machine.

Below the bounds are the time *settings* the tests give the gate (``FAST_*``, ...): they are
not bounds (a third kind there is not), they only make a run that retries retry quickly; a
behaviour bound whose margin depends on one names it in its comment. They live here so that
each has one name and one reason, and so that a change of the command line is one change
here. ``FAST_ATTEMPT`` is valid for every command that talks
to the gateway (``wait``, ``probe``, ``health``, ``mesh``); the backoff and the deadline are
``wait``'s alone (``health`` also takes ``--timeout``, as its own overall limit).
"""

from __future__ import annotations

# A log event that follows its cause within ~1 s (a gate's first attempt, a simulator's
# "listening"); slowest seen with both cores busy: ~1.5 s (interpreter start-up + imports).
EVENT_S = 10.0

# A process that is expected to exit on its own within a few seconds (a gate whose gateway is
# up, a probe, a health check, an `explain` of a small log).
EXIT_S = 30.0

# A command that does real work before it exits (mesh with several 1.5-5 s checks, a compose
# config render, a javac compile, a 100 MB explain): seconds to tens of seconds.
COMMAND_S = 60.0

# A process that was just signalled or killed: the gate's handler runs within milliseconds;
# 5 s only covers a machine that is not scheduling the process at all for a while.
AFTER_SIGNAL_S = 5.0

# Slack after a gate's own deadline: start-up (~0.1 s, ~1.5 s loaded) plus one last attempt
# cut to the time left (at most the per-attempt timeout, 5 s by default).
DEADLINE_SLACK_S = 10.0

# One podman call on a warm image cache (create, exec, logs, inspect, rm): 0.1-5 s here.
PODMAN_S = 60.0

# Building or pulling an image, `podman kube play`, `compose up`: cached layers, 10-60 s.
PODMAN_BUILD_S = 600.0

# JeroMQ's peer (a JVM) binding: its start-up on a loaded 2-core machine can take seconds;
# 30 s means it is broken (tests/support/zmq_peers.py).
JVM_BOUND_S = 30.0


def after_deadline(deadline_s: float) -> float:
    """How long to wait for a gate whose ``--timeout`` is ``deadline_s`` to exit."""
    return deadline_s + DEADLINE_SLACK_S


# --- Settings given to the gate (not bounds) ----------------------------------------------

# Per attempt: 1 s to connect and 1 s for a reply (defaults 2 s and 5 s). A peer on loopback
# connects and answers within milliseconds; 1 s still lets a loaded machine schedule it.
# The only timing flags every gateway command takes.
FAST_ATTEMPT = ("--connect-timeout", "1", "--reply-timeout", "1")

# Pauses of 0.05-0.2 s between attempts (`wait` only): five or more attempts a second, so a
# deadline of 1-2 s sees several attempts and three quick refusals (exit 78) take ~0.5 s.
FAST_BACKOFF = ("--backoff-initial", "0.05", "--backoff-max", "0.2")

# `wait` retrying quickly: FAST_BACKOFF and FAST_ATTEMPT.
FAST_WAIT = (*FAST_BACKOFF, *FAST_ATTEMPT)

# Pauses of 0.1-0.3 s (`wait` only): long enough for the gate's watch in a pause (its queued
# request, reconnecting every 50-150 ms) to have a turn in most of them, which the bridge and
# network tests count on, and still three or more attempts a second.
WATCHED_BACKOFF = ("--backoff-initial", "0.1", "--backoff-max", "0.3")

# A `wait` against a peer that refuses for the whole deadline (a bridge answering "no" within
# milliseconds): 2 s of WATCHED_BACKOFF is five or more attempts. Waited for with
# after_deadline(NEVER_READY_S).
NEVER_READY_S = 2.0
NEVER_READY_WAIT = ("--timeout", f"{NEVER_READY_S:g}", *WATCHED_BACKOFF)

# The soak (test_soak_fleet.py): refused attempts 1-3 ms apart for 15 s, thousands of them
# (~5,000 idle, ~3,000 with both cores busy), so that a leak of one descriptor per hundred
# attempts shows.
SOAK_S = 15.0
SOAK_WAIT = ("--backoff-initial", "0.001", "--backoff-max", "0.003", "--timeout", f"{SOAK_S:g}")
