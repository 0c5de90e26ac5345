"""The client half of a round: one model instance trains a share of the round's devices in turn."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from edgeweave.platform.aggregate import Partial
from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.flat import FlatLayout
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import Partition
from edgeweave.platform.seeding import torch_generator
from edgeweave.platform.strategies import STRATEGIES, Job
from edgeweave.platform.training import LocalResult, SGDSettings, train_local


def sgd_settings(cfg: ExperimentConfig) -> SGDSettings:
    t = cfg.training
    return SGDSettings(t.lr, t.momentum, t.weight_decay, t.batch_size, t.local_epochs, t.local_steps)


class Client:
    """Holds the data (zero-copy arrays), the partition and one model; trains jobs one after another."""

    def __init__(self, cfg: ExperimentConfig, data: ArrayData, partition: Partition) -> None:
        self.cfg = cfg
        self.data = data
        self.partition = partition
        use_gpu = cfg.ray.gpus_per_worker > 0 and torch.cuda.is_available()
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed).to(self.device)
        self.layout = FlatLayout(self.model)
        self.strategy = STRATEGIES.build(cfg.strategy.name, cfg.strategy.params, cfg=cfg)
        self.settings = sgd_settings(cfg)

    def indices(self, job: Job) -> np.ndarray:
        return self.partition.indices if job.pooled else self.partition.shard(job.device)

    def shard_size(self, job: Job) -> int:
        return len(self.indices(job))

    def load(self, flat: np.ndarray) -> None:
        self.layout.load(self.model, flat)

    def weights(self) -> np.ndarray:
        return self.layout.flatten(self.model)

    def train(self, round_: int, job: Job) -> LocalResult:
        """Local SGD on the job's samples, all draws from (seed, round, device)."""
        idx = self.indices(job)
        x = torch.from_numpy(self.data.x_train[idx]).to(self.device)
        y = torch.from_numpy(self.data.y_train[idx]).to(self.device)
        g = torch_generator(self.cfg.seed, round_, job.device)
        settings = self.settings if job.steps is None else replace(self.settings, steps=job.steps)
        return train_local(self.model, x, y, settings, g, augment=self.data.augment)

    def run(self, round_: int, global_weights: np.ndarray, jobs: list[Job]) -> Partial:
        """Train every job of this share and return one partial aggregate."""
        partial = Partial.zeros(self.layout.size)
        for job in jobs:
            self.strategy.client_update(self, round_, job, global_weights, partial)
        return partial
