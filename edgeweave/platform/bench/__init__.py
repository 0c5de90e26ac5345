"""Measuring the platform: the round bench against the plain-PyTorch floor, and the whole command.

`rounds.py` (`edgeweave bench`), `whole.py` (`edgeweave bench --whole`), `floor_command.py`
(the floor's own whole command). Imports the stages up to `run`.
"""

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ("core", "config", "data", "partition", "devices", "models", "train", "methods", "run")
