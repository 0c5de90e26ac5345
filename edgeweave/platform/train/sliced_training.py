"""Training with a fresh sub-model plan at every mini-batch (ordered dropout, DISTREAL).

The device keeps its full-size weights and momentum as flat tensors on the model's device
(a GPU when the worker has one). Each mini-batch gathers the plan's elements into a real
smaller model, takes one SGD step, and scatters the result back, all on that device: only the
plan's small channel lists and the batch's sample indices cross from the host per step. The
elements any step touched are what the device reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from edgeweave.platform.core.arrays import tensor_view
from edgeweave.platform.data.augment import crop_flip
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.models.norm import is_batch_norm
from edgeweave.platform.train.plans import Plan
from edgeweave.platform.train.sgd import LocalResult, SGDSettings
from edgeweave.platform.train.submodel import Slicer
from edgeweave.platform.train.training import Loss, batch_order

if TYPE_CHECKING:
    from edgeweave.platform.models.layers import ConvNet


class SubModels:
    """One model instance and layout per sub-model shape, reused across batches and devices.

    Under `norm: per_width` a sub-model's batch norms after a thinned layer keep their running statistics
    as they came (momentum 0) and `reported` leaves them out of what the device sends back.
    """

    def __init__(self, slicer: Slicer, device: torch.device | str = "cpu", norm: Optional[str] = None) -> None:
        self.slicer = slicer
        self.device = torch.device(device)
        self.per_width = norm == "per_width"
        self._models: dict[tuple, tuple[torch.nn.Module, FlatLayout, torch.Tensor]] = {}
        self._reported: dict[tuple, Optional[torch.Tensor]] = {}

    def get(self, plan: Plan, scale_kept: bool = False) -> tuple[torch.nn.Module, FlatLayout, torch.Tensor]:
        """(model, layout, parameter mask over the layout's elements) for the plan's shape, on `device`;
        `scale_kept`: the model scales thinned layers' outputs up (`Slicer.build`)."""
        key = plan.signature(), scale_kept
        if key not in self._models:
            model = self.slicer.build(plan, scale_kept).to(self.device)
            if self.per_width:
                self._hold_thinned_statistics(plan, model)
            layout = FlatLayout(model)
            params = {n for n, _ in model.named_parameters()}
            mask = torch.cat(
                [
                    torch.full((int(np.prod(s)),), n in params, device=self.device)
                    for n, s in zip(layout.names, layout.shapes)
                ]
            )
            self._models[key] = (model, layout, mask)
        return self._models[key]

    def reported(self, plan: Plan) -> Optional[torch.Tensor]:
        """Which of the plan's sub-model elements a device reports (on `device`); None: all of them."""
        key = plan.signature()
        if key not in self._reported:
            held = self.slicer.thinned_statistics(plan) if self.per_width else None
            self._reported[key] = None if held is None or not held.any() else torch.from_numpy(~held).to(self.device)
        return self._reported[key]

    def _hold_thinned_statistics(self, plan: Plan, model: ConvNet) -> None:
        """Momentum 0 for each batch norm after a conv that, or an earlier conv of which, is thinned."""
        thinned, layer = False, -1
        for m in model.features:
            if isinstance(m, torch.nn.Conv2d):
                layer += 1
                thinned = thinned or len(plan.keep[layer]) != self.slicer.widths[layer]
            elif is_batch_norm(m) and thinned:
                m.momentum = 0.0


def remap_labels(y: torch.Tensor, classes: Optional[np.ndarray]) -> torch.Tensor:
    """Targets as positions in the plan's class list (label split), on y's device; unchanged without one."""
    if classes is None:
        return y
    lookup = torch.full((int(max(classes.max(), y.max())) + 1,), -1, dtype=torch.long, device=y.device)
    lookup[torch.from_numpy(np.asarray(classes, np.int64)).to(y.device)] = torch.arange(len(classes), device=y.device)
    return lookup[y]


def _load(layout: FlatLayout, model: torch.nn.Module, flat: torch.Tensor) -> None:
    """Copy a flat tensor (on the model's device) into the model's own tensors, in place."""
    state = model.state_dict(keep_vars=True)
    for n, a, b in zip(layout.names, layout.offsets[:-1], layout.offsets[1:]):
        state[n].data.copy_(flat[a:b].view(state[n].shape))


def _flat_state(layout: FlatLayout, model: torch.nn.Module) -> torch.Tensor:
    """The model's state as one flat float32 tensor, where the model lives."""
    state = model.state_dict(keep_vars=True)
    return torch.cat([state[n].detach().reshape(-1).float() for n in layout.names])


def train_per_batch(
    models: SubModels,
    weights: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    s: SGDSettings,
    g: torch.Generator,
    plan_for_step: Callable[[int], Plan],
    augment: bool = False,
    loss_fn: Loss = F.cross_entropy,
    targets: Callable[[torch.Tensor, Plan], torch.Tensor] = lambda y, plan: remap_labels(y, plan.classes),
    allowed: Optional[np.ndarray] = None,
    scale_kept: bool = False,
) -> tuple[LocalResult, np.ndarray]:
    """SGD where step k trains the sub-model `plan_for_step(k)`; `weights` (flat) is updated in place.

    The work happens on `models.device`: pass `weights` there (a tensor elsewhere is copied there
    once and back once at the end). `g` is a CPU generator (shuffling, augmentation), so a run
    draws the same on CPU and GPU. `targets` maps a batch's labels (on their device) for the plan;
    elements outside `allowed` are held at zero and never reported; `scale_kept` trains each
    sub-model with its thinned layers' outputs scaled up by full over kept width. Returns the result and a bool
    mask of the elements trained at least once.
    """
    device = models.device
    work = weights.to(device)  # `weights` itself when it already lives there
    keep = None if allowed is None else tensor_view(np.asarray(allowed, bool)).to(device)
    momentum = torch.zeros_like(work)
    anchor = work.clone() if s.prox_mu else None  # FedProx's w_start, over every element a step may train
    touched = torch.zeros(len(work), dtype=torch.bool, device=device)
    total, samples, steps = 0.0, 0, 0
    last: tuple[Optional[Plan], Optional[torch.Tensor]] = (None, None)
    for k, idx in enumerate(batch_order(len(y), s, g)):
        plan = plan_for_step(k)
        if plan is not last[0]:  # steps that repeat a plan (ordered dropout) reuse its positions
            last = (plan, models.slicer.index(plan, device))
        pos = last[1]
        model, layout, is_param = models.get(plan, scale_kept)
        w = work[pos]
        _load(layout, model, w)
        model.train()
        idx = idx.to(x.device)
        xb, yb = x[idx].to(device), y[idx].to(device)
        if augment:
            xb = crop_flip(xb, g)
        loss = loss_fn(model(xb), targets(yb, plan).to(device))
        model.zero_grad(set_to_none=False)
        loss.backward()
        grad = layout.grads(model)
        after = _flat_state(layout, model)  # buffers (BN statistics) moved forward
        step = grad + s.weight_decay * w
        if anchor is not None:
            step = step + s.prox_mu * (w - anchor[pos])
        m = s.momentum * momentum[pos] + step
        momentum[pos] = torch.where(is_param, m, momentum[pos])
        new = torch.where(is_param, w - s.lr * m, after)
        if keep is not None:
            new = torch.where(keep[pos], new, torch.zeros_like(new))
        work[pos] = new
        report = models.reported(plan)
        if keep is not None:
            report = keep[pos] if report is None else report & keep[pos]
        touched[pos] = True if report is None else touched[pos] | report
        total += loss.item()
        samples += len(idx)
        steps += 1
    if work is not weights:
        weights.copy_(work)
    return LocalResult(samples, steps, total / max(steps, 1)), touched.cpu().numpy()
