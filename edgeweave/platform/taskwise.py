"""Task-wise decoupling: sub-models per group of classes (tasks), and objectives that assemble.

`grouped`: the first `trunk` prunable layers are shared; every later layer's channels are split
into G contiguous groups, connected only within their group (a grouped convolution), and group
g's last layer feeds only the classifier rows of its classes. The union of the G group plans'
positions is exactly the grouped network: cross-group weights belong to no group and stay zero.

`attributed`: after a warm-up of the full model, each filter gets a relevance score per class
(its mean activation on that class's samples); each group keeps the `keep` most relevant share
of every layer's filters for its classes. Groups may overlap.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeweave.platform.arrays import tensor_view
from edgeweave.platform.submodel import Plan, Slicer
from edgeweave.platform.training import device_of


def class_groups(num_classes: int, groups: int, explicit: Optional[Sequence[Sequence[int]]] = None) -> list[np.ndarray]:
    """The classes of each task: explicit lists, or the classes split into `groups` contiguous runs."""
    if explicit:
        return [np.array(sorted(set(g)), np.int64) for g in explicit]
    return [np.asarray(a, np.int64) for a in np.array_split(np.arange(num_classes), groups)]


def grouped_plans(slicer: Slicer, classes: list[np.ndarray], trunk: int) -> list[Plan]:
    """One plan per group: all channels of the trunk layers, the group's share of the others."""
    plans = []
    for g, cls in enumerate(classes):
        keep = tuple(np.arange(w) if layer < trunk else np.array_split(np.arange(w), len(classes))[g]
                     for layer, w in enumerate(slicer.widths))
        plans.append(Plan(keep, cls))
    return plans


def union(plans: Sequence[Plan]) -> Plan:
    """The plan covering every channel and class of several plans (a device with several tasks)."""
    keep = tuple(np.unique(np.concatenate(ks)) for ks in zip(*(p.keep for p in plans)))
    return Plan(keep, np.unique(np.concatenate([p.classes for p in plans])))


def allowed_mask(slicer: Slicer, size: int, plans: Sequence[Plan]) -> np.ndarray:
    """Elements of the global buffer that belong to some plan; the rest is held at zero."""
    mask = np.zeros(size, bool)
    for p in plans:
        mask[slicer.positions(p)] = True
    return mask


@torch.no_grad()
def relevance(model: nn.Module, x: np.ndarray, y: np.ndarray, num_classes: int, batch: int = 512) -> list[np.ndarray]:
    """Mean post-ReLU activation of every prunable layer's channels, per class: (width, classes) each.

    Runs where the model lives; the data goes there a batch at a time.
    """
    model.eval()
    device = device_of(model)
    sums: list[Optional[torch.Tensor]] = []
    counts = torch.zeros(num_classes, device=device)
    acts: list[torch.Tensor] = []
    # In every zoo model each ReLU follows exactly one prunable layer, in order.
    relus = [m for part in (model.features, model.classifier) for m in part if isinstance(m, nn.ReLU)]
    hooks = [r.register_forward_hook(lambda _m, _i, out: acts.append(out)) for r in relus]
    try:
        for i in range(0, len(y), batch):
            acts.clear()
            yb = tensor_view(y[i: i + batch]).to(device)
            model(tensor_view(x[i: i + batch]).to(device))
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


def attributed_plans(scores: list[np.ndarray], classes: list[np.ndarray], keep: float) -> list[Plan]:
    """Each group keeps, per layer, the ceil(keep x width) channels most relevant to its classes."""
    plans = []
    for cls in classes:
        kept = []
        for s in scores:
            k = max(1, int(np.ceil(keep * s.shape[0])))
            kept.append(np.sort(np.argsort(-s[:, cls].sum(axis=1), kind="stable")[:k]))
        plans.append(Plan(tuple(kept), cls))
    return plans


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
