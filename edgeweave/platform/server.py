"""The server half of a round: plan the jobs, fold the partial aggregates in, evaluate."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from edgeweave.platform.aggregate import Partial, average, combine
from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.flat import FlatLayout
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import Partition
from edgeweave.platform.strategies import STRATEGIES, Job
from edgeweave.platform.training import evaluate


class Server:
    """Owns the global weights; everything it does is a pure step on arrays."""

    def __init__(self, cfg: ExperimentConfig, data: ArrayData, partition: Partition) -> None:
        self.cfg = cfg
        self.data = data
        self.shard_sizes = partition.sizes()
        self.model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
        self.layout = FlatLayout(self.model)
        self.weights = self.layout.flatten(self.model)
        self.strategy = STRATEGIES.build(cfg.strategy.name, cfg.strategy.params, cfg=cfg)

    def plan(self, round_: int) -> list[Job]:
        return self.strategy.plan(round_, self.shard_sizes)

    def update(self, partials: Sequence[Partial]) -> list[dict]:
        """Average the round's partials into the global weights; returns the device records."""
        total = combine(partials)
        self.weights = average(self.weights, total.sums, total.counts)
        return sorted(total.records, key=lambda r: r["device"])

    def evaluate(self) -> tuple[float, float]:
        self.layout.load(self.model, self.weights)
        return evaluate(self.model, self.data.x_test, self.data.y_test, self.cfg.training.eval_batch_size)


def split_jobs(jobs: Sequence[Job], sizes: Sequence[int], workers: int) -> list[list[Job]]:
    """Share jobs between workers, largest first to the least loaded, so shares finish together."""
    shares: list[list[Job]] = [[] for _ in range(workers)]
    load = np.zeros(workers)
    for i in sorted(range(len(jobs)), key=lambda i: -sizes[i]):
        w = int(np.argmin(load))
        shares[w].append(jobs[i])
        load[w] += sizes[i]
    return shares
