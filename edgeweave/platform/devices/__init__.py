"""Simulated devices: tiers of different speed, resources that shift with virtual time, the clock.

A new resource model goes in `devices/resources/` (one file, one line in `core/registries.py`).
Every time here is absolute virtual seconds. Imports only `core`.
"""

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ("core",)
