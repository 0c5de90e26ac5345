"""Everything that runs without Ray, in packages named for the stage of a run they serve.

From the ground up (a package imports only those before it; `tests/unit/test_layout.py` holds
each package's `MAY_IMPORT` and finds any import circle):

- `core`: errors, registries and the table of built-in parts, plugins, seeded streams.
- `data`, `partition`, `devices`, `models`: what a run trains on and with; devices and their
  resources over virtual time (absolute seconds).
- `config`: the experiment and sweep schemas.
- `train`: the device side's engine (local SGD, sub-models, batching, partial aggregates).
- `methods`: one file per method (rules, server half, device half) and the server's update rules.
- `run`: the round loop and async steps, the clock's checks, checkpoints, sinks, plots.
- `report`, `search`, `bench`: after a run, DISTREAL's design-space search, measuring the platform.

Nothing here imports `ray`; `edgeweave.actors` and `edgeweave.tune` move this work between
processes. Plugins import the stable names from `edgeweave.api`, not from these modules.
"""
