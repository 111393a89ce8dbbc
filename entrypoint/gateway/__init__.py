"""Everything that talks to the MT5 bridge: TCP and greetings (tcp), the ZeroMQ client
(zmq_client), the dialect (requests and judgement), and one check of the gateway (check).
"""
