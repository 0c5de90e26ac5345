"""CIFAR-10 and CIFAR-100 read from torchvision's on-disk layout; torchvision only downloads.

The batch files are pickles, so they are read with an unpickler that admits NumPy arrays and
nothing else: a tampered file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Params
from edgeweave.platform.data.base import DATASETS, ArrayData, normalise

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(path: Path) -> dict:
    """One CIFAR batch file as a dict of str keys."""
    with open(path, "rb") as f:
        return _ArraysOnly(f, encoding="latin1").load()


class CifarParams(Params):
    root: str = "data"  # the folder holding cifar-10-batches-py/ or cifar-100-python/ (relative: to the working dir)
    download: bool = False  # torchvision fetches a missing set; false: a missing set is an error saying where it looked
    augment: bool = True  # random crop (zero padding 4) and horizontal flip of every training mini-batch


class _Cifar:
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: str
    num_classes: int
    url: str
    torchvision_class: str

    def __init__(self, params: CifarParams) -> None:
        self.params = params

    def _fetch(self, root: Path) -> None:
        import torchvision.datasets as tvd

        getattr(tvd, self.torchvision_class)(str(root), train=True, download=True)

    def _read(self, files: tuple[str, ...], base: Path) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for name in files:
            batch = read_batch(base / name)
            xs.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[self.label_key], dtype=np.int64))
        return np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys)

    def load(self, seed: int) -> ArrayData:
        root = Path(self.params.root).expanduser()
        base = root / self.folder
        missing = [n for n in self.train_files + self.test_files if not (base / n).is_file()]
        if missing and self.params.download:
            self._fetch(root)
            missing = [n for n in self.train_files + self.test_files if not (base / n).is_file()]
        if missing:
            raise UserError(
                f"data.root = {self.params.root!r}: {self.torchvision_class} not found "
                f"(looked for {base / missing[0]}); set data.download=true, or fetch "
                f"{self.url} and unpack it into {root}"
            )
        x_train, y_train = self._read(self.train_files, base)
        x_test, y_test = self._read(self.test_files, base)
        x_train, x_test = normalise(x_train, x_test)
        return ArrayData(x_train, y_train, x_test, y_test, self.num_classes, augment=self.params.augment)


@DATASETS.register("cifar10", CifarParams)
class Cifar10(_Cifar):
    """CIFAR-10: 50,000 + 10,000 colour 32x32 images of 10 classes."""

    folder = "cifar-10-batches-py"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    label_key = "labels"
    num_classes = 10
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    torchvision_class = "CIFAR10"


@DATASETS.register("cifar100", CifarParams)
class Cifar100(_Cifar):
    """CIFAR-100: 50,000 + 10,000 colour 32x32 images of 100 fine classes."""

    folder = "cifar-100-python"
    train_files = ("train",)
    test_files = ("test",)
    label_key = "fine_labels"
    num_classes = 100
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    torchvision_class = "CIFAR100"
