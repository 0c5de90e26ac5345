"""Training with a fresh sub-model plan at every mini-batch (ordered dropout, DISTREAL).

The device keeps its full-size weights and momentum as flat tensors. Each mini-batch gathers
the plan's elements into a real smaller model, takes one SGD step, and scatters the result
back; the elements any step touched are what the device reports.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from edgeweave.platform.data.augment import crop_flip
from edgeweave.platform.flat import FlatLayout
from edgeweave.platform.submodel import Plan, Slicer
from edgeweave.platform.training import LocalResult, Loss, SGDSettings, batch_order


class SubModels:
    """One model instance and layout per sub-model shape, reused across batches and devices."""

    def __init__(self, slicer: Slicer, device: torch.device = torch.device("cpu")) -> None:
        self.slicer = slicer
        self.device = device
        self._models: dict[tuple, tuple[torch.nn.Module, FlatLayout, torch.Tensor]] = {}

    def get(self, plan: Plan) -> tuple[torch.nn.Module, FlatLayout, torch.Tensor]:
        """(model, layout, parameter mask over the layout's elements) for the plan's shape."""
        key = plan.signature()
        if key not in self._models:
            model = self.slicer.build(plan).to(self.device)
            layout = FlatLayout(model)
            params = {n for n, _ in model.named_parameters()}
            mask = torch.cat([torch.full((int(np.prod(s)),), n in params)
                              for n, s in zip(layout.names, layout.shapes)])
            self._models[key] = (model, layout, mask)
        return self._models[key]


def remap_labels(y: torch.Tensor, classes: Optional[np.ndarray]) -> torch.Tensor:
    """Targets as positions in the plan's class list (label split); unchanged without one."""
    if classes is None:
        return y
    lookup = torch.full((int(max(classes.max(), y.max())) + 1,), -1, dtype=torch.long)
    lookup[torch.from_numpy(classes)] = torch.arange(len(classes))
    return lookup[y]


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
) -> tuple[LocalResult, np.ndarray]:
    """SGD where step k trains the sub-model `plan_for_step(k)`; `weights` (flat) is updated in place.

    `targets` maps a batch's labels for the plan; elements outside `allowed` are held at zero and
    never reported. Returns the result and a bool mask of the elements trained at least once.
    """
    keep = None if allowed is None else torch.from_numpy(np.asarray(allowed))
    momentum = torch.zeros_like(weights)
    touched = torch.zeros(len(weights), dtype=torch.bool)
    total, samples, steps = 0.0, 0, 0
    last: tuple[Optional[Plan], Optional[torch.Tensor]] = (None, None)
    for k, idx in enumerate(batch_order(len(y), s, g)):
        plan = plan_for_step(k)
        if plan is not last[0]:  # steps that repeat a plan (ordered dropout) reuse its positions
            last = (plan, torch.from_numpy(models.slicer.positions(plan)))
        pos = last[1]
        model, layout, is_param = models.get(plan)
        w = weights[pos]
        layout.load(model, w)
        model.train()
        idx = idx.to(x.device)
        xb = x[idx]
        if augment:
            xb = crop_flip(xb, g)
        loss = loss_fn(model(xb), targets(y[idx].cpu(), plan).to(x.device))
        model.zero_grad(set_to_none=False)
        loss.backward()
        grad = layout.grads(model).cpu()
        after = torch.from_numpy(layout.flatten(model))  # buffers (BN statistics) moved forward
        step = grad + s.weight_decay * w
        m = s.momentum * momentum[pos] + step
        momentum[pos] = torch.where(is_param, m, momentum[pos])
        new = torch.where(is_param, w - s.lr * m, after)
        if keep is not None:
            new = torch.where(keep[pos], new, torch.zeros_like(new))
        weights[pos] = new
        touched[pos] = True if keep is None else keep[pos]
        total += loss.item()
        samples += len(idx)
        steps += 1
    return LocalResult(samples, steps, total / max(steps, 1)), touched.numpy()
