"""Central training: one model on the union of all devices' data, the accuracy reference."""

from __future__ import annotations

import numpy as np

from edgeweave.platform.strategies.base import STRATEGIES, Job, Method, RoundPlan, Rules, ServerHalf
from edgeweave.platform.strategies.context import ServerContext


class CentralServer(ServerHalf):
    """Each round is `training.local_epochs` epochs over every device's data pooled together."""

    def plan(self, round_: int, devices: np.ndarray, ctx: ServerContext) -> RoundPlan:
        return RoundPlan([Job(device=-1, pooled=True)])


STRATEGIES.add("central", Method(Rules, CentralServer))
