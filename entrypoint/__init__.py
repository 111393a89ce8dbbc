"""mt5-gate: hold a container's strategy runner until the MT5 ZeroMQ gateway answers."""

__version__ = "0.2.0"
