"""Logging: the JSON events as declared (events), writing them (logs), the console
rendering for people (consolelog), and reading a gate's log back (gatelog).
"""
