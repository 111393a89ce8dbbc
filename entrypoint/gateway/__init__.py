"""Everything that talks to the MT5 bridge, given an ``Endpoint`` (never the configuration):
TCP and greetings (tcp), requests and replies as bridges write them (requests, replies),
the judgement and broker states, the dialect, the presets, ZeroMQ sockets (connection,
zmq_client), the transports behind one interface, and one check of the bridge (check)."""
