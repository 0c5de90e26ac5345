"""A data set brought in as a plugin, of CIFAR-10's size and shape: the whole-command benchmark's workload.

50,000 training and 2,000 test images of 3x32x32 in 10 classes, generated from a seed (nothing
is downloaded): each class a random low-frequency pattern, each image its pattern at a random
contrast plus noise. Vectorised and float32 throughout, written in place a chunk at a time.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.api import DATASETS, ArrayData, Params


class CifarShapedParams(Params):
    train_samples: int = Field(50_000, ge=10)
    test_samples: int = Field(2_000, ge=10)
    noise: float = Field(1.0, ge=0)


@DATASETS.register("cifar_shaped", CifarShapedParams)
class CifarShaped:
    def __init__(self, params: CifarShapedParams) -> None:
        self.params = params

    def _images(self, patterns: np.ndarray, n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Written a chunk at a time into one array: the loader never holds more than one copy of the set."""
        y = g.integers(0, len(patterns), size=n)
        scale = g.uniform(0.5, 1.5, size=(n, 1, 1, 1)).astype(np.float32)
        x = np.empty((n, *patterns.shape[1:]), np.float32)
        for i in range(0, n, 4096):
            np.multiply(patterns[y[i : i + 4096]], scale[i : i + 4096], out=x[i : i + 4096])
            x[i : i + 4096] += self.params.noise * g.standard_normal(x[i : i + 4096].shape, dtype=np.float32)
        return x, y.astype(np.int64)

    def load(self, seed: int) -> ArrayData:
        g = np.random.default_rng(seed)
        coarse = g.standard_normal((10, 3, 4, 4), dtype=np.float32)
        patterns = coarse.repeat(8, axis=2).repeat(8, axis=3)  # 4x4 blocks of 8x8 pixels
        x_train, y_train = self._images(patterns, self.params.train_samples, g)
        x_test, y_test = self._images(patterns, self.params.test_samples, g)
        return ArrayData(x_train, y_train, x_test, y_test, 10)
