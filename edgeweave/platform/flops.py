"""Exact training FLOPs per sample, measured by torch's flop counter on the real model, cached."""

from __future__ import annotations

from typing import Callable, Hashable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def measure_flops_per_sample(model: nn.Module, input_shape: tuple[int, ...], num_classes: int, batch: int = 2) -> int:
    """Forward plus backward FLOPs of one training sample (the input itself needs no gradient)."""
    x = torch.zeros(batch, *input_shape)
    y = torch.zeros(batch, dtype=torch.long) % max(num_classes, 1)
    was_training = model.training
    model.train()
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return int(counter.get_total_flops()) // batch


class FlopsCache:
    """FLOPs per sample keyed by (plan, input shape); the model is built only on a miss."""

    def __init__(self) -> None:
        self._cache: dict[Hashable, int] = {}

    def per_sample(self, key: Hashable, build: Callable[[], nn.Module], input_shape: tuple[int, ...],
                   num_classes: int) -> int:
        full_key = (key, tuple(input_shape), num_classes)
        if full_key not in self._cache:
            self._cache[full_key] = measure_flops_per_sample(build(), input_shape, num_classes)
        return self._cache[full_key]
