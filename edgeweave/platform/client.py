"""The client half of a round: one model instance trains a share of the round's devices in turn."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from edgeweave.platform.aggregate import Partial
from edgeweave.platform.arrays import tensor_view
from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.devices.view import DeviceView
from edgeweave.platform.flat import FlatLayout
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import Partition
from edgeweave.platform.seeding import torch_generator
from edgeweave.platform.sliced_training import SubModels, remap_labels, train_per_batch
from edgeweave.platform.strategies import STRATEGIES, Job
from edgeweave.platform.submodel import Plan, Slicer
from edgeweave.platform.training import LocalResult, SGDSettings, local_steps, sgd_settings, train_local


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
        self.slicer = Slicer(self.model, data.input_shape)
        self.submodels = SubModels(self.slicer, self.device)
        self.view = DeviceView(cfg)
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

    def device_classes(self, device: int) -> np.ndarray:
        """The classes a device holds (for label split)."""
        return self.partition.classes(device, self.data.y_train)

    def data_of(self, job: Job) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.indices(job)
        return (torch.from_numpy(self.data.x_train[idx]).to(self.device),
                torch.from_numpy(self.data.y_train[idx]).to(self.device))

    def settings_of(self, job: Job) -> SGDSettings:
        return self.settings if job.steps is None else replace(self.settings, steps=job.steps)

    def steps_of(self, job: Job) -> int:
        return local_steps(self.shard_size(job), self.settings_of(job))

    def generator(self, round_: int, job: Job) -> torch.Generator:
        """A CPU generator even when the model is on a GPU: the same draws, so the same run, on both."""
        return torch_generator(self.cfg.seed, round_, job.device)

    def train(self, round_: int, job: Job, model: Optional[nn.Module] = None,
              classes: Optional[np.ndarray] = None, labels: Optional[Callable] = None,
              **kwargs: Any) -> LocalResult:
        """Local SGD on the job's samples (on `model`, default the full one); draws from (seed, round, device).

        `classes` trains only those output rows (label split); `labels` maps the targets otherwise;
        other keyword arguments go to `train_local` (loss_fn, after_step).
        """
        x, y = self.data_of(job)
        if classes is not None:
            y = remap_labels(y, classes)
        elif labels is not None:
            y = labels(y).to(self.device)
        return train_local(model if model is not None else self.model, x, y, self.settings_of(job),
                           self.generator(round_, job), augment=self.data.augment, **kwargs)

    def train_per_batch(self, round_: int, job: Job, global_weights: np.ndarray, partial: Partial,
                        plan_for_step: Callable[[int], Plan], steps: Optional[int] = None, **kwargs: Any) -> None:
        """Train the job with a fresh sub-model plan each mini-batch; add what it touched to `partial`.

        Keyword arguments go to `sliced_training.train_per_batch` (loss_fn, targets, allowed).
        """
        x, y = self.data_of(job)
        # The weights and momentum stay on the model's device for the whole job: the weights cross
        # once each way per job, never per mini-batch.
        weights = tensor_view(global_weights).to(device=self.device, dtype=torch.float32, copy=True)
        settings = self.settings_of(job) if steps is None else replace(self.settings, steps=steps)
        result, touched = train_per_batch(self.submodels, weights, x, y, settings, self.generator(round_, job),
                                          plan_for_step, self.data.augment, **kwargs)
        pos = np.flatnonzero(touched)
        partial.add(weights.cpu().numpy()[pos], weight=float(self.shard_size(job)), mask=pos)
        partial.record(job.device, result.samples, result.steps, result.loss)

    def run(self, round_: int, global_weights: np.ndarray, jobs: list[Job], state: Any = None) -> Partial:
        """Train every job of this share and return one partial aggregate."""
        self.strategy.receive_state(state)
        partial = Partial.zeros(self.layout.size)
        for job in jobs:
            self.strategy.client_update(self, round_, job, global_weights, partial)
        return partial
