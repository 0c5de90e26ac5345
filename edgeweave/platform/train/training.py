"""Local training and evaluation as plain functions: no Ray, no global random state."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeweave.platform.core.arrays import device_of, tensor_view
from edgeweave.platform.data.augment import crop_flip
from edgeweave.platform.train.sgd import LocalResult, SGDSettings


def batch_order(n: int, s: SGDSettings, g: torch.Generator) -> list[torch.Tensor]:
    """The mini-batches' sample positions: shuffled epochs, or exactly `steps` batches.

    `g` is a CPU generator wherever the model trains: the draws, and so the run, are the same on
    CPU and GPU; each batch's small index tensor is moved to the data's device by the caller.
    """
    batches: list[torch.Tensor] = []
    epoch = 0
    while (epoch < s.epochs) if s.steps is None else (len(batches) < s.steps):
        perm = torch.randperm(n, generator=g)
        batches.extend(perm[i : i + s.batch_size] for i in range(0, n, s.batch_size))
        epoch += 1
    return batches if s.steps is None else batches[: s.steps]


Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def sgd_step(
    params: Sequence[torch.Tensor],
    grads: Sequence[Optional[torch.Tensor]],
    momentum: list[Optional[torch.Tensor]],
    s: SGDSettings,
    anchors: Optional[Sequence[torch.Tensor]] = None,
    offsets: Optional[Sequence[torch.Tensor]] = None,
) -> None:
    """torch.optim.SGD's step on `params` in place, op for op as its single-tensor path takes it (so the
    very same numbers), without torch.optim: its first step loads about a second of torch internals in
    every process. `momentum` holds each parameter's buffer (None until its first step); a parameter
    without a gradient stays. Stacked weights of devices trained together take the same step.

    A method's local term joins the gradient first: `offsets` (SCAFFOLD's correction c - c_i) as they are,
    and FedProx's `s.prox_mu * (p - anchor)` with `anchors` the weights the job started from."""
    for i, (p, grad) in enumerate(zip(params, grads)):
        if grad is None:
            continue
        if offsets is not None:
            grad = grad + offsets[i]
        if s.prox_mu and anchors is not None:
            grad = grad.add(p - anchors[i], alpha=s.prox_mu)
        if s.weight_decay:
            grad = grad.add(p, alpha=s.weight_decay)
        if s.momentum:
            buf = momentum[i]
            if buf is None:
                buf = torch.clone(grad).detach()
                momentum[i] = buf
            else:
                buf.mul_(s.momentum).add_(grad, alpha=1.0)
            grad = buf
        p.add_(grad, alpha=-s.lr)


def train_local(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    s: SGDSettings,
    g: torch.Generator,
    augment: bool = False,
    loss_fn: Loss = F.cross_entropy,
    after_step: Optional[Callable[[], None]] = None,
    offsets: Optional[Sequence[torch.Tensor]] = None,
) -> LocalResult:
    """Run SGD on (x, y) in place on `model`; all shuffling and augmentation draw from `g`.

    `after_step` runs after every optimiser step (a projection that keeps a structure, say). With
    `offsets` (one tensor per parameter, added to every gradient: SCAFFOLD's correction) the result
    carries the mean of the loss gradients over the steps, one tensor per parameter.
    """
    model.train()
    device = device_of(model)
    params = list(model.parameters())
    momentum: list[Optional[torch.Tensor]] = [None] * len(params)
    anchors = [p.detach().clone() for p in params] if s.prox_mu else None
    gradient = [torch.zeros_like(p) for p in params] if offsets is not None else None
    total, samples, steps = 0.0, 0, 0
    for idx in batch_order(len(y), s, g):
        idx = idx.to(x.device)
        xb, yb = x[idx].to(device), y[idx].to(device)  # no-ops when the data already lives there
        if augment:
            xb = crop_flip(xb, g)
        loss = loss_fn(model(xb), yb)
        model.zero_grad(set_to_none=True)
        loss.backward()
        if gradient is not None:
            for acc, p in zip(gradient, params):
                if p.grad is not None:
                    acc.add_(p.grad)
        sgd_step(params, [p.grad for p in params], momentum, s, anchors, offsets)
        if after_step is not None:
            after_step()
        total += loss.item()
        samples += len(idx)
        steps += 1
    if gradient is not None:
        gradient = [acc / max(steps, 1) for acc in gradient]
    return LocalResult(samples, steps, total / max(steps, 1), gradient)


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of `model` on (x, y), wherever the model lives."""
    model.eval()
    device = device_of(model)
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch_size):
        xb, yb = tensor_view(x[i : i + batch_size]).to(device), tensor_view(y[i : i + batch_size]).to(device)
        out = model(xb)
        loss += float(F.cross_entropy(out, yb, reduction="sum"))
        correct += int((out.argmax(1) == yb).sum())
    n = max(len(y), 1)
    return correct / n, loss / n
