"""Configuration: every option and how its value is resolved (options), the settings
validated whole (config), and the CURVE keys (curve).
"""
