"""Training several devices together: one batched forward and backward pass over stacked weights.

Devices of a round that train the same plan on as many samples differ only in their weights and
their mini-batches. `torch.func.vmap` over `functional_call` trains them in one pass per step,
each device on its own mini-batches in its own order (its own generator), with plain SGD on the
stacked weights. For a model whose step is dominated by per-operation overhead this is several
times faster than training the devices one after another; for a larger model it is slower, so
`training.batched: auto` batches only models whose mini-batch costs at most BATCH_FLOPS.

Which devices train together is decided by the server (`batch_groups`, from the round's jobs and
the config alone) and groups are never split between workers: the arithmetic of a batched pass
depends on how many devices it holds, so the groups, and with them the result, must not depend
on how many workers there are.
"""

from __future__ import annotations

from typing import Hashable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeweave.platform.data.augment import crop_flip
from edgeweave.platform.train.sgd import LocalResult, SGDSettings
from edgeweave.platform.train.training import batch_order, sgd_step

BATCH_FLOPS = 40e6  # training FLOPs of one full-model mini-batch up to which `auto` batches devices


def batchable(model: nn.Module, batch_flops: float) -> bool:
    """Whether `auto` trains devices together: a cheap step, and a model whose state is all parameters
    (no batch-norm statistics to keep per device) and that draws no random numbers (no dropout)."""
    if batch_flops > BATCH_FLOPS:
        return False
    params = {id(p) for p in model.parameters()}
    stateless = all(id(t) in params for t in model.state_dict(keep_vars=True).values())
    return stateless and not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules())


def batch_groups(keys: Sequence[Optional[Hashable]], size: int) -> list[Optional[int]]:
    """A group id per job: jobs of the same key (None: never batched) in round order, cut into as few
    near-equal groups of at most `size` as they need; None for a job left alone."""
    members: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            members.setdefault(key, []).append(i)
    out: list[Optional[int]] = [None] * len(keys)
    group = 0
    for idx in members.values():
        for part in np.array_split(np.asarray(idx), -(-len(idx) // size)):
            if len(part) > 1:
                for i in part.tolist():
                    out[i] = group
                group += 1
    return out


def train_together(
    model: nn.Module,
    xs: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    s: SGDSettings,
    generators: Sequence[torch.Generator],
    augment: bool = False,
) -> tuple[list[dict[str, torch.Tensor]], list[LocalResult]]:
    """SGD for each device i on (xs[i], ys[i]) from the model's current weights, all in one pass per step.

    Every device must have as many samples (so the same mini-batch sizes). Device i draws its batch
    order and augmentation from `generators[i]` exactly as `train_local` would, and its update
    equals `train_local`'s up to floating-point rounding. Returns each device's parameters (by name)
    and its result.
    """
    n = len(ys[0])
    if any(len(y) != n for y in ys):
        raise ValueError("devices trained together need as many samples each")
    devices = len(ys)
    start = {k: p.detach() for k, p in model.named_parameters()}
    weights = {k: p.unsqueeze(0).repeat(devices, *[1] * p.dim()) for k, p in start.items()}
    anchors = [w.clone() for w in weights.values()] if s.prox_mu else None
    momentum: list[Optional[torch.Tensor]] = [None] * len(weights)
    orders = [batch_order(n, s, g) for g in generators]

    def loss_of(params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.func.functional_call(model, params, (x,)), y)

    step = torch.func.vmap(torch.func.grad_and_value(loss_of))
    model.train()
    total = torch.zeros(devices, dtype=torch.float64)
    samples = 0
    for k in range(len(orders[0])):
        batches = [order[k].to(x.device) for order, x in zip(orders, xs)]
        xb = [x[idx] for x, idx in zip(xs, batches)]
        if augment:
            xb = [crop_flip(x, g) for x, g in zip(xb, generators)]
        grads, losses = step(weights, torch.stack(xb), torch.stack([y[idx] for y, idx in zip(ys, batches)]))
        with torch.no_grad():
            sgd_step(list(weights.values()), [grads[name] for name in weights], momentum, s, anchors)
        total += losses.detach().double().cpu()
        samples += len(batches[0])
    steps = len(orders[0])
    results = [LocalResult(samples, steps, float(t) / max(steps, 1)) for t in total]
    return [{name: w[i] for name, w in weights.items()} for i in range(devices)], results
