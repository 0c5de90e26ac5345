"""Training methods (the config's `strategy`): one file each, registering its three parts.

A method is its rules (`Rules`: plans the round's jobs, times them, checks its config), its
server half (`ServerHalf`: aggregates or harvests, owns what a checkpoint keeps) and its device
half (`DeviceHalf`: trains one job), each seeing a small typed context (`context.py`), never the
other side's objects. Also here: the server's update rules (`server_rules.py`: plain, momentum,
Adam, Yogi, Adagrad) and DISTREAL's Pareto front file (`front.py`). A new method is one file here
and one line in `core/registries.py`; looking it up imports that file only. Imports every stage
below the run (`core`, `config`, `data`, `partition`, `devices`, `models`, `train`).
"""

from edgeweave.platform.methods.base import (
    STRATEGIES,
    DeviceHalf,
    Job,
    Method,
    RoundPlan,
    Rules,
    ServerHalf,
    device_half,
    server_half,
)

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ("core", "config", "data", "partition", "devices", "models", "train")


__all__ = [
    "STRATEGIES",
    "DeviceHalf",
    "Job",
    "Method",
    "RoundPlan",
    "Rules",
    "ServerHalf",
    "device_half",
    "server_half",
]
