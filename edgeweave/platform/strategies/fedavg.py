"""FedAvg (McMahan et al., AISTATS 2017): sampled devices train the full model; sample-weighted mean."""

from __future__ import annotations

import numpy as np

from edgeweave.platform.aggregate import Partial
from edgeweave.platform.strategies.base import STRATEGIES, Job, Strategy


@STRATEGIES.register("fedavg")
class FedAvg(Strategy):
    """Every sampled device trains the whole model locally; the server averages by samples held."""

    def client_update(
        self, client, round_: int, job: Job, global_weights: np.ndarray, partial: Partial
    ) -> None:
        client.load(global_weights)
        result = client.train(round_, job)
        partial.add(client.weights(), weight=float(client.shard_size(job)))
        partial.record(job.device, result.samples, result.steps, result.loss)
