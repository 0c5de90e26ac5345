"""What each half of a method may read: small typed contexts instead of the other side's objects.

`Facts` is what both halves know alike, all of it derived from the config and the seed: the
model's shape and costs, each device's data (size, labels, classes), tier and resources, and so
each device-round's timeline. The server half reads a `ServerContext` (the facts, the global
weights, a device's time for its full work); the device half a `DeviceContext` (the facts and
ways to train a job on the device's own data). Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Protocol

import numpy as np

from edgeweave.platform.devices.clock import batch_sizes
from edgeweave.platform.devices.timeline import DeviceTimeline, Segment, StepRule, constant, device_timeline
from edgeweave.platform.train.aggregate import Partial
from edgeweave.platform.train.sgd import local_steps, sgd_settings

if TYPE_CHECKING:
    from edgeweave.platform.config.schema import ExperimentConfig
    from edgeweave.platform.data import ArrayData
    from edgeweave.platform.devices.view import DeviceView
    from edgeweave.platform.methods.base import Job
    from edgeweave.platform.partition import Partition
    from edgeweave.platform.train.plans import Plan
    from edgeweave.platform.train.submodel import Slicer


class Facts:
    """What the driver and every worker know alike about the model and the devices."""

    def __init__(
        self,
        cfg: "ExperimentConfig",
        slicer: "Slicer",
        view: "DeviceView",
        partition: "Partition",
        labels: np.ndarray,
        num_classes: int,
    ) -> None:
        self.cfg = cfg
        self.slicer = slicer  # the model's prunable layers, sub-model sizes and exact FLOPs
        self.view = view  # each device's tier, bandwidth and resources over virtual time
        self.input_shape = slicer.input_shape
        self.num_classes = num_classes
        self._partition = partition
        self._labels = labels
        self._sizes = partition.sizes()
        self._settings = sgd_settings(cfg)

    @property
    def model_size(self) -> int:
        """Elements of the full model's flat weights."""
        return self.slicer.layout.size

    def samples(self, job: "Job") -> int:
        """Samples the job's device holds (all of them for the pooled central job)."""
        return int(self._sizes.sum() if job.pooled else self._sizes[job.device])

    def labels(self, device: int) -> np.ndarray:
        """The labels of the samples a device holds, in its shard's order."""
        return self._labels[self._partition.shard(device)]

    def classes(self, device: int) -> np.ndarray:
        """The classes a device holds (label split)."""
        return self._partition.classes(device, self._labels)

    def full_steps(self, job: "Job") -> int:
        """Mini-batches of the job's full local work."""
        return local_steps(self.samples(job), self._settings)

    def steps(self, job: "Job") -> int:
        """Mini-batches the job trains: its own count when the deadline cut it, else its full work."""
        return job.steps if job.steps is not None else self.full_steps(job)

    def batch_sizes(self, job: "Job", steps: int) -> np.ndarray:
        """Samples in each of the job's first `steps` mini-batches."""
        return batch_sizes(self.samples(job), self.cfg.training.batch_size, steps)

    def timeline(self, round_: int, job: "Job", model_bytes: float, rule: StepRule) -> DeviceTimeline:
        """The job's device-round from its start: download, each mini-batch as `rule` picks it, upload.

        The pooled central job runs on one reference device at full speed, with no network.
        """
        planned = self.full_steps(job)
        if job.pooled:
            return device_timeline(
                self.segment(round_, job), job.start, 0.0, planned, rule, None, self.cfg.devices.stragglers
            )
        return self.view.timeline(round_, job.device, job.start, model_bytes, planned, rule)

    def segment(self, round_: int, job: "Job") -> Segment:
        """What the job's device has at any virtual time of the round: the resource model its timeline reads."""
        return constant(self.cfg.devices.flops_per_second) if job.pooled else self.view.segment(job.device, round_)


@dataclass(frozen=True)
class ServerContext:
    """What the server half reads when it plans a round; it changes nothing through it."""

    facts: Facts
    weights: np.ndarray  # the global weights (read-only)
    data: "ArrayData"  # the training data, for methods that score the model on it (task-wise attribution)
    seconds: Callable[[int, "Job"], float]  # virtual seconds of a job's full work at its device's speed now
    model_at: Callable[[np.ndarray], Any]  # a scratch copy of the full model (a torch module) holding the weights


class TrainFull(Protocol):
    def __call__(
        self, round_: int, job: "Job", weights: np.ndarray, partial: Partial, correction: Optional[np.ndarray] = None
    ) -> Optional[np.ndarray]:
        """Train the full model. `correction` (flat, the model's size) joins every step's gradient (SCAFFOLD's
        c - c_i); with it, returns the mean over the steps of the loss gradient (flat, zeros on buffers)."""


class TrainPlan(Protocol):
    def __call__(
        self,
        round_: int,
        job: "Job",
        weights: np.ndarray,
        partial: Partial,
        plan: "Plan",
        targets: Optional[Callable[[Any, "Plan"], Any]] = None,
        loss_fn: Optional[Callable] = None,
        allowed: Optional[np.ndarray] = None,
        scale_kept: bool = False,
    ) -> None:
        """Train the sub-model `plan` for the whole job. `targets(y, plan)` maps labels (default: the
        plan's classes, label split); elements outside `allowed` (a mask over the flat weights) stay zero;
        `scale_kept` scales thinned layers' outputs by full over kept width (HeteroFL's scaler)."""


class TrainSteps(Protocol):
    def __call__(
        self,
        round_: int,
        job: "Job",
        weights: np.ndarray,
        partial: Partial,
        plan_for_step: Callable[[int], "Plan"],
        steps: Optional[int] = None,
        *,
        loss_fn: Optional[Callable] = None,
        targets: Optional[Callable[[Any, "Plan"], Any]] = None,
        allowed: Optional[np.ndarray] = None,
        scale_kept: bool = False,
    ) -> None:
        """Train a fresh sub-model `plan_for_step(k)` at each mini-batch k (`steps` of them, default the
        job's); `scale_kept` scales thinned layers' outputs by full over kept width."""


@dataclass(frozen=True)
class DeviceContext:
    """What the device half may use in a round: the facts, the round's shared state, the state each of its
    devices kept, and training on the job's own samples. Each training call starts from the round's global
    weights and adds the update, weighted by the job's samples, to `partial`, with one record of what it
    trained; what a device keeps for its next round goes to `partial.keep(device, arrays)`."""

    facts: Facts
    shared: Any  # what the server half shared this round (None: nothing)
    train_full: TrainFull
    train_plan: TrainPlan
    train_steps: TrainSteps
    stored: Mapping[int, dict[str, np.ndarray]] = field(default_factory=dict)  # this share's devices' state

    def state(self, device: int) -> dict[str, np.ndarray]:
        """A copy of what the device kept at its last round (`Rules.device_arrays`); empty before its first."""
        return {name: np.array(v, np.float32) for name, v in self.stored.get(device, {}).items()}
