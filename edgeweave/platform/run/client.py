"""A worker's side of a round: one model instance trains a share of the round's devices in turn."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.core.arrays import tensor_view
from edgeweave.platform.core.seeding import torch_generator
from edgeweave.platform.data import ArrayData
from edgeweave.platform.devices.view import DeviceView
from edgeweave.platform.methods import Job, device_half
from edgeweave.platform.methods.base import DeviceHalf
from edgeweave.platform.methods.context import DeviceContext, Facts
from edgeweave.platform.methods.width import WidthDevice
from edgeweave.platform.models import build_model
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.partition import Partition
from edgeweave.platform.train.aggregate import Partial
from edgeweave.platform.train.batched import train_together
from edgeweave.platform.train.plans import Plan
from edgeweave.platform.train.sgd import LocalResult, SGDSettings, sgd_settings
from edgeweave.platform.train.sliced_training import SubModels, remap_labels, train_per_batch
from edgeweave.platform.train.submodel import Slicer
from edgeweave.platform.train.training import train_local


def pick_device(cfg: ExperimentConfig) -> torch.device:
    """CUDA where the worker was given a share of a GPU and sees one (set up by `deterministic_cuda`), else the CPU."""
    if cfg.ray.gpus_per_worker > 0 and torch.cuda.is_available():
        deterministic_cuda()
        return torch.device("cuda")
    return torch.device("cpu")


def deterministic_cuda() -> None:
    """Plain float32 and deterministic kernels for this process's CUDA work, so a GPU run repeats itself.

    TF32 rounds matmul and conv inputs to 10 mantissa bits, and cuDNN's benchmark picks kernels by timing.
    cuBLAS is deterministic only with a fixed workspace, read from the environment at its first use, so
    this runs before the worker's first CUDA op. Ops with no deterministic CUDA kernel warn, not stop the run.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


class Client:
    """Holds the data (zero-copy arrays), the partition and one model; trains jobs one after another.

    The device half sees none of it but a `DeviceContext`: the facts, the round's shared state and
    the three ways to train a job on its own samples.
    """

    def __init__(self, cfg: ExperimentConfig, data: ArrayData, partition: Partition) -> None:
        self.cfg = cfg
        self.data = data
        self.partition = partition
        self.device = pick_device(cfg)
        self.model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed).to(self.device)
        self.layout = FlatLayout(self.model)
        self.slicer = Slicer(self.model, data.input_shape)
        self.slicer.flops(None)  # measured now, while the driver starts too, not in the first round
        self.submodels = SubModels(self.slicer, self.device, getattr(cfg.model.params, "norm", None))
        self.facts = Facts(cfg, self.slicer, DeviceView(cfg), partition, data.y_train, data.num_classes)
        self.half = device_half(cfg)
        self.in_groups = trains_in_groups(self.half)
        self.settings = sgd_settings(cfg)
        self._round_weights: tuple[Optional[np.ndarray], Optional[torch.Tensor]] = (None, None)
        self._data_on_device = self._keep_data_on_gpu(cfg, data)

    def _keep_data_on_gpu(self, cfg: ExperimentConfig, data: ArrayData) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """On a GPU, the training data goes there once when it takes at most half the worker's share of
        the GPU's memory: each job's samples are then a gather on the GPU, not a copy from the host."""
        if self.device.type != "cuda":
            return None
        share = torch.cuda.get_device_properties(self.device).total_memory * min(1.0, cfg.ray.gpus_per_worker)
        if data.x_train.nbytes + data.y_train.nbytes > share / 2:
            return None
        return tensor_view(data.x_train).to(self.device), tensor_view(data.y_train).to(self.device)

    def warm_up(self) -> None:
        """Train one device's full model once, the result thrown away: the first pass's set-up (kernels,
        and the fresh memory its buffers fault in, a few tenths of a second in a VM) happens while the
        run starts rather than in its first round. Every job loads its weights, so nothing carries over."""
        sizes = self.partition.sizes()
        if len(sizes) and sizes.max() > 0:
            device = Job(int(np.argmax(sizes)))
            job = replace(device, steps=min(self.facts.full_steps(device), 2))
            self.train_full(0, job, self.weights(), Partial.zeros(self.layout.size))

    def indices(self, job: Job) -> np.ndarray:
        return self.partition.indices if job.pooled else self.partition.shard(job.device)

    def load(self, flat: np.ndarray) -> None:
        """The global weights into the model; on a GPU they cross once a round, not once per device."""
        if self.device.type == "cuda":
            if self._round_weights[0] is not flat:
                self._round_weights = (flat, tensor_view(flat).to(self.device))
            on_device = self._round_weights[1]
            assert on_device is not None  # set with `flat`, just now or on an earlier call
            self.layout.load(self.model, on_device)
            return
        self.layout.load(self.model, flat)

    def weights(self) -> np.ndarray:
        return self.layout.flatten(self.model)

    def data_of(self, job: Job) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.indices(job)
        if self._data_on_device is not None:
            x, y = self._data_on_device
            at = torch.from_numpy(np.asarray(idx, np.int64)).to(self.device)
            return x[at], y[at]
        return (
            torch.from_numpy(self.data.x_train[idx]).to(self.device),
            torch.from_numpy(self.data.y_train[idx]).to(self.device),
        )

    def settings_of(self, job: Job, steps: Optional[int] = None) -> SGDSettings:
        """The job's SGD settings: its own step count when the deadline cut it, or `steps` when given."""
        steps = job.steps if steps is None else steps
        return self.settings if steps is None else replace(self.settings, steps=steps)

    def generator(self, round_: int, job: Job) -> torch.Generator:
        """A CPU generator even when the model is on a GPU: the same draws, so the same run, on both."""
        return torch_generator(self.cfg.seed, round_, job.device)

    def train(
        self,
        round_: int,
        job: Job,
        model: Optional[nn.Module] = None,
        targets: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
        **kwargs: Any,
    ) -> LocalResult:
        """Local SGD on the job's samples (on `model`, default the full one); draws from (seed, round, device).

        `targets` maps the labels; other keyword arguments go to `train_local` (loss_fn, after_step).
        """
        x, y = self.data_of(job)
        if targets is not None:
            y = targets(y).to(self.device)
        return train_local(
            model if model is not None else self.model,
            x,
            y,
            self.settings_of(job),
            self.generator(round_, job),
            augment=self.data.augment,
            **kwargs,
        )

    def train_full(
        self, round_: int, job: Job, weights: np.ndarray, partial: Partial, correction: Optional[np.ndarray] = None
    ) -> Optional[np.ndarray]:
        self.load(weights)
        names = [n for n, _ in self.model.named_parameters()]
        offsets = None
        if correction is not None:
            split = self.layout.split(correction)
            offsets = [split[n].to(self.device) for n in names]
        result = self.train(round_, job, offsets=offsets)
        partial.add(self.weights(), weight=float(self.facts.samples(job)))
        partial.record(job.device, result.samples, result.steps, result.loss)
        return None if result.gradient is None else self.layout.gather(dict(zip(names, result.gradient)))

    def train_plan(
        self,
        round_: int,
        job: Job,
        weights: np.ndarray,
        partial: Partial,
        plan: Plan,
        targets: Optional[Callable] = None,
        loss_fn: Optional[Callable] = None,
        allowed: Optional[np.ndarray] = None,
        scale_kept: bool = False,
    ) -> None:
        pos = self.slicer.positions(plan)
        own = np.ones(len(pos), bool) if allowed is None else allowed[pos]
        model, layout, _ = self.submodels.get(plan, scale_kept)
        layout.load(model, weights[pos])
        project = None
        if not own.all():  # elements outside `allowed` stay zero, as in the global model
            params = dict(model.named_parameters())
            masks = {k: m.to(params[k].device) for k, m in layout.split(own).items() if k in params}
            project = lambda: [params[k].data.mul_(m) for k, m in masks.items()]  # noqa: E731
        labels = (lambda y: remap_labels(y, plan.classes)) if targets is None else (lambda y: targets(y, plan))
        result = self.train(
            round_,
            job,
            model=model,
            targets=labels,
            after_step=project,
            **({} if loss_fn is None else {"loss_fn": loss_fn}),
        )
        reported = self.submodels.reported(plan)
        sent = own if reported is None else own & reported.cpu().numpy()  # per_width: not a thinned layer's statistics
        partial.add(layout.flatten(model)[sent], weight=float(self.facts.samples(job)), mask=pos[sent])
        partial.record(job.device, result.samples, result.steps, result.loss)

    def train_steps(
        self,
        round_: int,
        job: Job,
        weights: np.ndarray,
        partial: Partial,
        plan_for_step: Callable[[int], Plan],
        steps: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        x, y = self.data_of(job)
        # The weights and momentum stay on the model's device for the whole job: the weights cross
        # once each way per job, never per mini-batch.
        work = tensor_view(weights).to(device=self.device, dtype=torch.float32, copy=True)
        result, touched = train_per_batch(
            self.submodels,
            work,
            x,
            y,
            self.settings_of(job, steps),
            self.generator(round_, job),
            plan_for_step,
            self.data.augment,
            **kwargs,
        )
        pos = np.flatnonzero(touched)
        partial.add(work.cpu().numpy()[pos], weight=float(self.facts.samples(job)), mask=pos)
        partial.record(job.device, result.samples, result.steps, result.loss)

    def run(
        self,
        round_: int,
        global_weights: np.ndarray,
        jobs: list[Job],
        state: Any = None,
        stored: Optional[dict[int, dict[str, np.ndarray]]] = None,
    ) -> Partial:
        """Train every job of this share and return one partial aggregate; the jobs of a batch group
        (`split_jobs` keeps each whole) train together, where their device half allows, at its first job.
        `stored`: the state the share's devices kept (methods that keep some)."""
        self.half.rules.receive(state)
        ctx = DeviceContext(self.facts, state, self.train_full, self.train_plan, self.train_steps, stored or {})
        partial = Partial.zeros(self.layout.size)
        groups: dict[Any, list[Job]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(("job", i) if job.group is None else ("group", job.group), []).append(job)
        for group in groups.values():
            together = Together(self, round_) if len(group) > 1 and self.in_groups else None
            for job in group:
                self.half.train(
                    ctx if together is None else together.context(ctx), round_, job, global_weights, partial
                )
            if together is not None:
                together.flush()
        return partial


def trains_in_groups(half: DeviceHalf) -> bool:
    """Whether a device half's jobs may train in batch groups: only where its `train` is a built-in one,
    which does nothing with the partial after its training call (a held-back call adds to the partial
    only when the group trains); a device half of one's own trains one device after another."""
    return type(half).train in (DeviceHalf.train, WidthDevice.train)


@dataclass
class _Queued:
    """A training call held back until its batch group trains."""

    job: Job
    weights: np.ndarray
    partial: Partial
    plan: Optional[Plan]
    targets: Optional[Callable]
    scale_kept: bool = False


class Together:
    """Holds back a batch group's full-model and plain sub-model jobs and trains them in one batched pass.

    Any other call (a per-mini-batch plan, a custom loss, a mask) first trains what is held back, then
    runs as usual, so updates reach the partial in the jobs' order either way.
    """

    def __init__(self, client: Client, round_: int) -> None:
        self.client = client
        self.round = round_
        self.queue: list[_Queued] = []

    def context(self, ctx: DeviceContext) -> DeviceContext:
        return replace(ctx, train_full=self.full, train_plan=self.plan, train_steps=self.steps)

    def full(
        self, round_: int, job: Job, weights: np.ndarray, partial: Partial, correction: Optional[np.ndarray] = None
    ) -> Optional[np.ndarray]:
        if correction is None:
            self.queue.append(_Queued(job, weights, partial, None, None))
            return None
        self.flush()
        return self.client.train_full(round_, job, weights, partial, correction)

    def plan(
        self,
        round_: int,
        job: Job,
        weights: np.ndarray,
        partial: Partial,
        plan: Plan,
        targets: Optional[Callable] = None,
        loss_fn: Optional[Callable] = None,
        allowed: Optional[np.ndarray] = None,
        scale_kept: bool = False,
    ) -> None:
        if loss_fn is None and allowed is None:
            self.queue.append(_Queued(job, weights, partial, plan, targets, scale_kept))
            return
        self.flush()
        self.client.train_plan(round_, job, weights, partial, plan, targets, loss_fn, allowed, scale_kept)

    def steps(
        self,
        round_: int,
        job: Job,
        weights: np.ndarray,
        partial: Partial,
        plan_for_step: Callable,
        steps: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        self.flush()
        self.client.train_steps(round_, job, weights, partial, plan_for_step, steps, **kwargs)

    def flush(self) -> None:
        """Train what is held back together. The server grouped these jobs by plan, samples and steps, and
        a group trains from one set of weights (a round's, or one model version's in an async step)."""
        queue, self.queue = self.queue, []
        if not queue:
            return
        first, c = queue[0], self.client
        if len(queue) == 1:
            for q in queue:
                if q.plan is None:
                    c.train_full(self.round, q.job, q.weights, q.partial)
                else:
                    c.train_plan(self.round, q.job, q.weights, q.partial, q.plan, q.targets, scale_kept=q.scale_kept)
            return
        if first.plan is None:
            model, layout, pos = c.model, c.layout, None
            c.load(first.weights)
        else:
            model, layout, _ = c.submodels.get(first.plan, first.scale_kept)
            pos = c.slicer.positions(first.plan)
            layout.load(model, first.weights[pos])
        ys: Sequence[torch.Tensor]  # the jobs' labels, mapped for a sub-model's plan
        xs, ys = zip(*(c.data_of(q.job) for q in queue))
        if first.plan is not None:
            plan = first.plan
            ys = [
                (remap_labels(y, plan.classes) if first.targets is None else first.targets(y, plan)).to(c.device)
                for y in ys
            ]
        trained, results = train_together(
            model, xs, ys, c.settings_of(first.job), [c.generator(self.round, q.job) for q in queue], c.data.augment
        )
        for q, params, result in zip(queue, trained, results):
            flat = torch.cat([params[n].reshape(-1) for n in layout.names]).cpu().numpy()
            q.partial.add(flat, weight=float(c.facts.samples(q.job)), mask=pos)
            q.partial.record(q.job.device, result.samples, result.steps, result.loss)
