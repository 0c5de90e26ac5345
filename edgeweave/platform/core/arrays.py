"""NumPy to torch without copies (buffers come read-only from Ray's object store), and where a model's tensors live."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn


def tensor_view(a: np.ndarray) -> torch.Tensor:
    """A tensor sharing `a`'s memory; callers only read it, so read-only buffers are fine."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(a))


def device_of(model: nn.Module) -> torch.device:
    """Where the model's tensors live (the CPU for a model without any)."""
    for t in model.parameters():
        return t.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")
