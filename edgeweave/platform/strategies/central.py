"""Central training: one model on the union of all devices' data, the accuracy reference."""

from __future__ import annotations

import numpy as np

from edgeweave.platform.strategies.base import STRATEGIES, Job
from edgeweave.platform.strategies.fedavg import FedAvg


@STRATEGIES.register("central")
class Central(FedAvg):
    """Each round is `training.local_epochs` epochs over every device's data pooled together."""

    def plan(self, round_: int, devices: np.ndarray, server) -> list[Job]:
        return [Job(device=-1, pooled=True)]
