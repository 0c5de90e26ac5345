"""Data sets as arrays: digits (bundled), synthetic and shapes (from a seed), CIFAR-10/100, FEMNIST, Speech Commands.

Also the batched augmentation (`augment.py`) and the synthetic Speech Commands tree (`speech_synth.py`).
A new data set is one file here (it returns `ArrayData`) and one line in `core/registries.py`.
Imports only `core`.
"""

from edgeweave.platform.data.base import DATASETS, ArrayData

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ("core",)


__all__ = ["DATASETS", "ArrayData", "load_dataset"]


def load_dataset(choice, seed: int) -> ArrayData:
    """Load the data set a config's `data` section names."""
    return DATASETS.build(choice.name, choice.params).load(seed)
