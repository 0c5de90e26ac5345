"""The in-memory form of every data set: NumPy arrays, normalised once, shared zero-copy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from edgeweave.platform.core.registries import DATASETS as DATASETS


@dataclass(frozen=True)
class ArrayData:
    """Train and test splits as (N, C, H, W) float32 images and int64 labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    augment: bool = False  # random crop and flip on training batches
    owners: Optional[np.ndarray] = None  # who made each training sample (a writer, a speaker), for `natural`

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


def channel_moments(x: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (plus 1e-8) of NCHW samples in float64, two passes a chunk at a time."""
    axes = (0, 2, 3)
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    squares = sum(((x[i : i + chunk] - mean) ** 2).sum(axis=axes, keepdims=True) for i in range(0, len(x), chunk))
    return mean, np.sqrt(squares / (x.size // x.shape[1])) + 1e-8


def _scaled(x: np.ndarray, mean: np.ndarray, std: np.ndarray, out: np.ndarray, chunk: int) -> np.ndarray:
    """`out` = (x - mean) / std, computed in float64 a chunk of samples at a time (`out` may be `x`)."""
    for i in range(0, len(x), chunk):
        out[i : i + chunk] = (x[i : i + chunk] - mean) / std
    return out


def normalise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both splits by the training split's per-channel mean and std, as new float32 arrays (computed
    a chunk at a time: no float64 copy of a whole split)."""
    mean, std = channel_moments(x_train)
    return (
        _scaled(x_train, mean, std, np.empty(x_train.shape, np.float32), 1024),
        _scaled(x_test, mean, std, np.empty(x_test.shape, np.float32), 1024),
    )


def normalise_in_place(x_train: np.ndarray, x_test: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """`normalise` applied in place: no copy of the splits at all, which for Speech Commands or FEMNIST are
    gigabytes."""
    mean, std = channel_moments(x_train, chunk)
    return _scaled(x_train, mean, std, x_train, chunk), _scaled(x_test, mean, std, x_test, chunk)


def stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train/test split that keeps each class's share."""
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
