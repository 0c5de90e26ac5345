"""Model zoo: cnn, alexnet, vgg11, vgg16 in CIFAR form, all adapting to 8x8 inputs."""

import torch
from torch import nn

from edgeweave.platform.models.base import MODELS
from edgeweave.platform.plugins import import_all

import_all(__name__, __path__)

__all__ = ["MODELS", "build_model"]


def build_model(choice, input_shape: tuple[int, int, int], num_classes: int, seed: int) -> nn.Module:
    """Build the configured model with initial weights drawn from `seed` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS.build(choice.name, choice.params).build(input_shape, num_classes)
