"""The pieces every zoo network is built from: conv stacks, the ConvNet shape and MLP heads."""

from __future__ import annotations

import torch
from torch import nn

from edgeweave.platform.models.base import scaled


def conv_stack(
    spec: list[int | str],
    in_channels: int,
    size: tuple[int, int],
    width: float,
    batch_norm: bool,
) -> tuple[nn.Sequential, int, int]:
    """3x3 conv layers and 'M' max-pools; a pool is skipped once the input is 1 pixel high or wide.

    Returns the stack, its output channels and its output pixels (height x width), so the same
    spec serves 32x32 CIFAR, 8x8 digits and 40x101 spectrograms. With `batch_norm` each conv (then
    without bias) feeds a batch norm; how its statistics are kept is the run's `model.norm`.
    """
    layers: list[nn.Module] = []
    c, (h, w) = in_channels, size
    for item in spec:
        if item == "M":
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            continue
        out = scaled(int(item), width)
        layers.append(nn.Conv2d(c, out, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
        c = out
    return nn.Sequential(*layers), c, h * w


class ConvNet(nn.Module):
    """A conv feature stack followed by a linear classifier head: the shape of every zoo model."""

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def mlp_head(in_features: int, hidden: list[int], num_classes: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_features, h), nn.ReLU(inplace=True)]
        in_features = h
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)
