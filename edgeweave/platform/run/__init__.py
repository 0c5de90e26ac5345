"""A run's loop and what it leaves behind: rounds or async steps on the virtual clock, checkpoints, sinks, plots.

`experiment.py` runs the rounds; `server.py` (synchronous rounds) and `asynchronous.py`
(FedBuff-style steps) are the driver's side, `servers.py` picks one; `client.py` is the device
side (a worker's share of a round, through a method's device half); `invariants.py` checks the
clock and records as the run goes; `checkpoint.py`, `device_state.py`, `rundir.py` hold what a
resume needs; `sinks.py` (console, JSONL, W&B) and `plots.py` what users read; `phases.py` the
command's phase timeline. A new figure of one run goes in `plots.py` (figures comparing runs or
sweep trials: `report`; the search's front: `search`). Imports every stage below it (`core`,
`config`, `data`, `partition`, `devices`, `models`, `train`, `methods`), never `report`, `search`
or `bench`.
"""

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ("core", "config", "data", "partition", "devices", "models", "train", "methods")
