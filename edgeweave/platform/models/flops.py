"""Exact training FLOPs per sample of the real model, counted as torch's flop counter counts them, cached.

torch's counter runs the model under a dispatch mode whose first use loads about a second of torch
internals in every process. For models made only of layers whose cost follows from their shapes
(convolutions and linear layers; activations, pooling and batch norm cost the counter nothing) the
same number comes from one plain forward pass with shape hooks; anything else is measured by the
counter. A test holds the two equal on every model in the zoo.
"""

from __future__ import annotations

from math import prod
from typing import Callable, Hashable, Optional

import torch
import torch.nn.functional as F
from torch import nn

SHAPED = (nn.Conv2d, nn.Linear)  # layers whose FLOPs follow from their shapes
FREE = (
    nn.ReLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.BatchNorm2d,
    nn.Identity,
    nn.Dropout,
)  # layers the counter counts nothing for


def shaped_flops_per_sample(model: nn.Module, input_shape: tuple[int, ...], batch: int = 2) -> Optional[int]:
    """Forward plus backward FLOPs of one training sample from the layers' shapes, or None when the
    model holds anything else (or a grouped convolution, or a frozen parameter): then only the counter
    knows. Each conv or linear layer costs its forward once more for the weights' gradient, and once more
    for its input's gradient unless no parameter comes before it (the input needs no gradient)."""
    from edgeweave.platform.models.layers import ConvNet  # whose forward calls nothing but its layers

    leaves = [m for m in model.modules() if not list(m.children())]
    if (
        type(model) is not ConvNet
        or not all(isinstance(m, SHAPED + FREE) for m in leaves)
        or any(isinstance(m, nn.Conv2d) and m.groups != 1 for m in leaves)
        or not all(p.requires_grad for p in model.parameters())
    ):
        return None
    total, gradient_flows = 0, False

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total, gradient_flows
        if isinstance(module, nn.Conv2d):
            forward = 2 * prod(output.shape) * prod(module.weight.shape[1:])
        elif isinstance(module, nn.Linear):
            forward = 2 * prod(output.shape) * module.in_features
        else:
            gradient_flows |= any(True for _ in module.parameters())
            return
        total += forward * (3 if gradient_flows else 2)
        gradient_flows = True

    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.zeros(batch, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    return total // batch


def measure_flops_per_sample(model: nn.Module, input_shape: tuple[int, ...], num_classes: int, batch: int = 2) -> int:
    """Forward plus backward FLOPs of one training sample (the input itself needs no gradient), by torch's
    flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

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

    def per_sample(
        self, key: Hashable, build: Callable[[], nn.Module], input_shape: tuple[int, ...], num_classes: int
    ) -> int:
        full_key = (key, tuple(input_shape), num_classes)
        if full_key not in self._cache:
            model = build()
            shaped = shaped_flops_per_sample(model, input_shape)
            self._cache[full_key] = (
                shaped if shaped is not None else measure_flops_per_sample(model, input_shape, num_classes)
            )
        return self._cache[full_key]
