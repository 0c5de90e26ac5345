"""DISTREAL's design-space exploration: the Pareto front of dropout vectors that `edgeweave dse` writes.

The front's file format and how a device picks from it are `methods/front.py` (the method reads
it); here is the search that makes it (`dse.py`) and its figure (`plots.py`). Imports the stages
up to `run`.
"""

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ("core", "config", "data", "partition", "devices", "models", "train", "methods", "run")
