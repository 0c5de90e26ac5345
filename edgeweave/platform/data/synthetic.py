"""Class-conditional images generated from a seed: CIFAR-shaped data with no download."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.platform.core.registry import Params
from edgeweave.platform.core.seeding import SERVER, Stream, rng
from edgeweave.platform.data.base import DATASETS, ArrayData, normalise

CHUNK = 4096  # samples whose noise is drawn at once


class SyntheticParams(Params):
    num_classes: int = Field(10, ge=2)  # classes, each a smooth random prototype drawn from the seed
    train_samples: int = Field(5000, ge=2)  # training images; each label drawn uniformly, so classes are not balanced
    test_samples: int = Field(1000, ge=1)  # test images, their labels drawn the same way
    image_size: int = Field(32, ge=4)  # side of the square images, in pixels
    channels: int = Field(3, ge=1)  # image channels (3: CIFAR-shaped)
    difficulty: float = Field(1.0, ge=0)  # noise std relative to the class signal
    augment: bool = False  # random crop (zero padding 4) and horizontal flip of every training mini-batch


@DATASETS.register("synthetic", SyntheticParams)
class Synthetic:
    """Each class is a smooth random prototype; a sample is its prototype, shifted, plus noise."""

    def __init__(self, params: SyntheticParams) -> None:
        self.params = params

    def _prototypes(self, g: np.random.Generator) -> np.ndarray:
        import torch  # loading data may use torch; validating a config does not
        import torch.nn.functional as F

        p = self.params
        coarse = g.standard_normal((p.num_classes, p.channels, 4, 4)).astype(np.float32)
        fine = F.interpolate(
            torch.from_numpy(coarse),
            size=(p.image_size, p.image_size),
            mode="bilinear",
            align_corners=False,
        )
        return fine.numpy()

    def _draw(self, protos: np.ndarray, n: int, g: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """`n` samples: a prototype scaled, shifted (rolled by up to 2 pixels each way) and noised.

        Vectorised: each sample is one gather from the prototypes rolled by every shift, and the noise
        is added a chunk at a time (no float64 copy of the whole split); the draws, their order and the
        arithmetic are those of a sample-by-sample loop, so the data are the same bits.
        """
        p = self.params
        y = g.integers(0, p.num_classes, size=n).astype(np.int64)
        scale = g.uniform(0.7, 1.3, size=(n, 1, 1, 1)).astype(np.float32)
        shifts = g.integers(-2, 3, size=(n, 2))
        rolled = np.stack([np.roll(protos, shift=(a, b), axis=(2, 3)) for a in range(-2, 3) for b in range(-2, 3)], 1)
        x = rolled[y, (shifts[:, 0] + 2) * 5 + shifts[:, 1] + 2]  # a roll moves values: scaling commutes with it
        np.multiply(x, scale, out=x)
        for i in range(0, n, CHUNK):  # one stream drawn in pieces is the stream drawn at once
            x[i : i + CHUNK] += p.difficulty * g.standard_normal(x[i : i + CHUNK].shape).astype(np.float32)
        return x, y

    def load(self, seed: int) -> ArrayData:
        g = rng(seed, -1, SERVER, Stream.SYNTHETIC_DATA)
        protos = self._prototypes(g)
        x_train, y_train = self._draw(protos, self.params.train_samples, g)
        x_test, y_test = self._draw(protos, self.params.test_samples, g)
        x_train, x_test = normalise(x_train, x_test)
        return ArrayData(x_train, y_train, x_test, y_test, self.params.num_classes, augment=self.params.augment)
