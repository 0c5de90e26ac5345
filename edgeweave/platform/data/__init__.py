"""Data sets as arrays: digits (bundled), synthetic (from a seed), CIFAR-10/100 (torchvision)."""

from edgeweave.platform.data.base import DATASETS, ArrayData
from edgeweave.platform.plugins import import_all

import_all(__name__, __path__)

__all__ = ["DATASETS", "ArrayData", "load_dataset"]


def load_dataset(choice, seed: int) -> ArrayData:
    """Load the data set a config's `data` section names."""
    return DATASETS.build(choice.name, choice.params).load(seed)
