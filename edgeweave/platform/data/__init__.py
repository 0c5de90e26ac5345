"""Data sets as arrays: digits (bundled), synthetic and shapes (from a seed), CIFAR-10/100, FEMNIST, Speech Commands."""

from edgeweave.platform.data.base import DATASETS, ArrayData

for _name, _module in {"cifar10": "cifar", "cifar100": "cifar", "digits": "digits", "femnist": "femnist",
                      "shapes": "shapes", "speech_commands": "speech_commands", "synthetic": "synthetic"}.items():  # imported when a config names the data set
    DATASETS.declare(_name, f"{__name__}.{_module}")

__all__ = ["DATASETS", "ArrayData", "load_dataset"]


def load_dataset(choice, seed: int) -> ArrayData:
    """Load the data set a config's `data` section names."""
    return DATASETS.build(choice.name, choice.params).load(seed)
