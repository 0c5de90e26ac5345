"""NumPy to torch without copies, for buffers that come read-only from Ray's object store."""

from __future__ import annotations

import warnings

import numpy as np
import torch


def tensor_view(a: np.ndarray) -> torch.Tensor:
    """A tensor sharing `a`'s memory; callers only read it, so read-only buffers are fine."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(a))
