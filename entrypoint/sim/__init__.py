"""The simulator: a simulated MT5 ZeroMQ bridge, and the demo strategy runner.

``server`` is the simulated gateway (``mt5-gate sim``: REQ/REP, PUB, the fault knobs),
``dialects`` how it answers, one function per one-socket bridge, ``bridges`` the bridges
that answer on a second socket (dwx, mql5-json-api), and ``demo_runner`` the stand-in
strategy the demo and the image's default CMD exec into (``python -m
entrypoint.sim.demo_runner``). The command's flags are in ``commands/sim.py``.

Above the gateway layer and the configuration, below the commands: nothing the gate runs
imports it. Empty on purpose: the demo runner installs its stop handlers before it
imports anything heavy, and this package is imported first.
"""
