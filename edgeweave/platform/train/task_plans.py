"""Task-wise decoupling: sub-models per group of classes (tasks); their relevance scores and
objectives are in `task_training` (torch).

`grouped`: the first `trunk` prunable layers are shared; every later layer's channels are split
into G contiguous groups, connected only within their group (a grouped convolution), and group
g's last layer feeds only the classifier rows of its classes. The union of the G group plans'
positions is exactly the grouped network: cross-group weights belong to no group and stay zero.

`attributed`: after a warm-up of the full model, each filter gets a relevance score per class
(its mean activation on that class's samples); each group keeps the `keep` most relevant share
of every layer's filters for its classes. Groups may overlap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from edgeweave.platform.train.plans import Plan

if TYPE_CHECKING:
    from edgeweave.platform.train.submodel import Slicer


def class_groups(num_classes: int, groups: int, explicit: Optional[Sequence[Sequence[int]]] = None) -> list[np.ndarray]:
    """The classes of each task: explicit lists, or the classes split into `groups` contiguous runs."""
    if explicit:
        return [np.array(sorted(set(g)), np.int64) for g in explicit]
    return [np.asarray(a, np.int64) for a in np.array_split(np.arange(num_classes), groups)]


def grouped_plans(slicer: "Slicer", classes: list[np.ndarray], trunk: int) -> list[Plan]:
    """One plan per group: all channels of the trunk layers, the group's share of the others."""
    plans = []
    for g, cls in enumerate(classes):
        keep = tuple(
            np.arange(w) if layer < trunk else np.array_split(np.arange(w), len(classes))[g]
            for layer, w in enumerate(slicer.widths)
        )
        plans.append(Plan(keep, cls))
    return plans


def union(plans: Sequence[Plan]) -> Plan:
    """The plan covering every channel and class of several plans (a device with several tasks)."""
    keep = tuple(np.unique(np.concatenate(ks)) for ks in zip(*(p.keep for p in plans)))
    return Plan(keep, np.unique(np.concatenate([p.classes for p in plans])))


def allowed_mask(slicer: "Slicer", size: int, plans: Sequence[Plan]) -> np.ndarray:
    """Elements of the global buffer that belong to some plan; the rest is held at zero."""
    mask = np.zeros(size, bool)
    for p in plans:
        mask[slicer.positions(p)] = True
    return mask


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
