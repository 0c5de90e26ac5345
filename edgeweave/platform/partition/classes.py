"""Explicit classes per device: the samples of a class are shared equally by the devices listing it.

With `elsewhere` > 0 that share of each class's samples is dealt instead to the devices not listing it, so a
device holds mostly its own classes and a little of every other (devices that prefer their own tasks).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Params
from edgeweave.platform.partition.base import PARTITIONERS


class ClassesParams(Params):
    classes: list[list[int]] = Field(min_length=1)  # class ids per device: device d holds classes[d mod len(classes)]
    elsewhere: float = Field(0.0, ge=0, lt=1)  # share of each class's samples dealt to the devices not listing it


@PARTITIONERS.register("classes", ClassesParams)
class Classes:
    """Device d holds only the classes in classes[d]; the list cycles when devices outnumber it."""

    def __init__(self, params: ClassesParams) -> None:
        self.params = params

    def split(self, labels: np.ndarray, num_devices: int, g: np.random.Generator) -> list[np.ndarray]:
        lists = [self.params.classes[d % len(self.params.classes)] for d in range(num_devices)]
        present = set(np.unique(labels).tolist())
        for cls in lists:
            bad = [c for c in cls if c not in present]
            if bad:
                raise UserError(
                    f"partition.classes = {cls}: class {bad[0]} is not in the data; "
                    f"valid: {min(present)}..{max(present)}"
                )
        holders: dict[int, list[int]] = {}
        for d, cls in enumerate(lists):
            for c in dict.fromkeys(cls):
                holders.setdefault(c, []).append(d)
        parts: list[list[np.ndarray]] = [[] for _ in range(num_devices)]
        for c, devices in sorted(holders.items()):
            idx = g.permutation(np.flatnonzero(labels == c))
            others = [d for d in range(num_devices) if d not in devices]
            away = int(round(self.params.elsewhere * len(idx))) if others else 0
            for d, piece in zip(devices, np.array_split(idx[away:], len(devices))):
                parts[d].append(piece)
            for d, piece in zip(others, np.array_split(idx[:away], len(others))):
                parts[d].append(piece)
        return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]
