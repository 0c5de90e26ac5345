"""The torch half of task-wise decoupling: filter relevance per class, and objectives whose logits assemble.

Only processes that score or train a model import it; validating a config never does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeweave.platform.core.arrays import device_of, tensor_view

if TYPE_CHECKING:
    from edgeweave.platform.models.layers import ConvNet


@torch.no_grad()
def relevance(model: ConvNet, x: np.ndarray, y: np.ndarray, num_classes: int, batch: int = 512) -> list[np.ndarray]:
    """Mean post-ReLU activation of every prunable layer's channels, per class: (width, classes) each.

    Runs where the model lives; the data goes there a batch at a time.
    """
    model.eval()
    device = device_of(model)
    sums: list[torch.Tensor] = []
    counts = torch.zeros(num_classes, device=device)
    acts: list[torch.Tensor] = []
    # In every zoo model each ReLU follows exactly one prunable layer, in order.
    relus = [m for part in (model.features, model.classifier) for m in part if isinstance(m, nn.ReLU)]
    hooks = [r.register_forward_hook(lambda _m, _i, out: acts.append(out)) for r in relus]
    try:
        for i in range(0, len(y), batch):
            acts.clear()
            yb = tensor_view(y[i : i + batch]).to(device)
            model(tensor_view(x[i : i + batch]).to(device))
            onehot = F.one_hot(yb, num_classes).float()
            counts += onehot.sum(0)
            for k, a in enumerate(acts):
                per_channel = a.mean(dim=(2, 3)) if a.dim() == 4 else a
                contrib = per_channel.T @ onehot
                if len(sums) <= k:
                    sums.append(contrib)
                else:
                    sums[k] = sums[k] + contrib
    finally:
        for h in hooks:
            h.remove()
    return [(s / counts.clamp(min=1)).cpu().numpy() for s in sums]


def own_labels(y: torch.Tensor, classes: np.ndarray) -> torch.Tensor:
    """Targets as positions among the device's own classes, on y's device; every other class becomes len(classes)."""
    lookup = torch.full((int(max(classes.max(), int(y.max()))) + 1,), len(classes), dtype=torch.long, device=y.device)
    lookup[torch.from_numpy(np.asarray(classes, np.int64)).to(y.device)] = torch.arange(len(classes), device=y.device)
    return lookup[y]


def other_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Softmax over the own classes plus a constant zero 'other' logit, which non-owned samples target."""
    return F.cross_entropy(torch.cat([logits, logits.new_zeros(len(logits), 1)], dim=1), target)


def ovr_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """One-vs-rest: an independent sigmoid per own class, positives its samples, negatives all others."""
    return F.binary_cross_entropy_with_logits(logits, F.one_hot(target, logits.shape[1] + 1)[:, :-1].float())


OBJECTIVES = {"other": other_loss, "ovr": ovr_loss}
