"""scikit-learn's bundled 8x8 handwritten digits: the quickstart's data, no download."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgeweave.platform.core.registry import Params
from edgeweave.platform.core.seeding import SERVER, Stream, rng
from edgeweave.platform.data.base import DATASETS, ArrayData, normalise, stratified_split


class DigitsParams(Params):
    test_fraction: float = Field(0.2, gt=0, lt=1)  # share of the 1,797 images held out for testing, stratified by class


@DATASETS.register("digits", DigitsParams)
class Digits:
    """1,797 grey 8x8 images of 10 digits, split stratified into train and test from the seed."""

    def __init__(self, params: DigitsParams) -> None:
        self.params = params

    def load(self, seed: int) -> ArrayData:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
        y = bunch.target.astype(np.int64)
        train, test = stratified_split(y, self.params.test_fraction, rng(seed, -1, SERVER, Stream.DATA_SPLIT))
        x_train, x_test = normalise(x[train], x[test])
        return ArrayData(x_train, y[train], x_test, y[test], num_classes=10)
