"""FEMNIST (LEAF): 28x28 grey handwritten characters, 62 classes, each sample with its writer.

Read from LEAF's JSON layout: `root/train/*.json` and `root/test/*.json`, each file
`{"users": [...], "num_samples": [...], "user_data": {user: {"x": [[784 floats]], "y": [...]}}}`.
The writer of every training sample is kept (`ArrayData.owners`), so `partition: natural` can
give each device one writer. With `download: true`, LEAF's processing as TensorFlow Federated
publishes it (HDF5, 3,400 writers) is fetched and written out in that layout once (needs h5py).
"""

from __future__ import annotations

import json
import shutil
import tarfile
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Params
from edgeweave.platform.data.base import DATASETS, ArrayData, normalise_in_place

URL = "https://storage.googleapis.com/tff-datasets-public/fed_emnist.tar.bz2"
H5 = {"train": "fed_emnist_train.h5", "test": "fed_emnist_test.h5"}
CLASSES = 62  # 10 digits, 26 upper and 26 lower case letters
SIDE = 28
USERS_PER_FILE = 100  # writers per JSON file when converting


class FemnistParams(Params):
    """Where LEAF's femnist `train/` and `test/` folders are, and whether to fetch them when they are not."""

    root: str = "data/femnist"  # the folder holding `train/*.json` and `test/*.json` (relative: to the working dir)
    download: bool = False  # when root has none, fetch TFF's HDF5 copy and write it in LEAF's layout (needs h5py)


def read_split(folder: Path) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(writer, images (n, 784) float32, labels (n,) int64) for every writer of every file, in file order."""
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            users, data = doc["users"], doc["user_data"]
            for user in users:
                x = np.asarray(data[user]["x"], np.float32).reshape(-1, SIDE * SIDE)
                y = np.asarray(data[user]["y"], np.int64).reshape(-1)
                if len(x) != len(y):
                    raise ValueError(f"writer {user!r} has {len(x)} images and {len(y)} labels")
                yield str(user), x, y
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
            raise UserError(
                f"data.root: {path} is not a LEAF FEMNIST file ({type(e).__name__}: {e}); expected "
                '{"users": [...], "user_data": {user: {"x": [[784 floats]], "y": [...]}}}'
            ) from None


def h5_to_leaf(h5_path: Path, out: Path, users_per_file: int = USERS_PER_FILE) -> None:
    """Write an HDF5 split (`examples/<writer>/pixels`, `label`) as LEAF JSON files in `out`."""
    try:
        import h5py
    except ImportError:
        raise UserError("data.download = true: converting FEMNIST needs h5py; pip install h5py") from None
    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(h5_path, "r") as f:
        writers = sorted(f["examples"])
        for start in range(0, len(writers), users_per_file):
            part = writers[start : start + users_per_file]
            data = {
                w: {
                    "x": np.asarray(f["examples"][w]["pixels"], np.float32).reshape(-1, SIDE * SIDE).tolist(),
                    "y": np.asarray(f["examples"][w]["label"], np.int64).reshape(-1).tolist(),
                }
                for w in part
            }
            doc = {"users": part, "num_samples": [len(data[w]["y"]) for w in part], "user_data": data}
            tmp = out / f".part_{start // users_per_file:04d}.json"
            tmp.write_text(json.dumps(doc))
            tmp.rename(out / f"part_{start // users_per_file:04d}.json")


@DATASETS.register("femnist", FemnistParams)
class Femnist:
    """The writers' samples as arrays; writer ids numbered in file order, test writers as in training."""

    num_classes = CLASSES

    def __init__(self, params: FemnistParams) -> None:
        self.params = params

    def _fetch(self, root: Path) -> None:
        """Download the published HDF5 files and write both splits in LEAF's layout, into a scratch folder
        first: an interrupted conversion leaves no half split behind to be taken for a whole one."""
        scratch = root / ".converting"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        archive = scratch / "fed_emnist.tar.bz2"
        urllib.request.urlretrieve(URL, archive)
        with tarfile.open(archive) as tar:
            tar.extractall(scratch, filter="data")
        for split, name in H5.items():
            h5_to_leaf(scratch / name, scratch / split)
        for split in H5:
            shutil.rmtree(root / split, ignore_errors=True)  # an incomplete earlier copy
            (scratch / split).rename(root / split)
        shutil.rmtree(scratch)

    def load(self, seed: int) -> ArrayData:
        """Both splits as arrays, normalised in place by the training split's mean and std; the writer of
        each training sample numbered in file order."""
        root = Path(self.params.root).expanduser()
        present = lambda: all(any((root / s).glob("*.json")) for s in ("train", "test"))  # noqa: E731
        if not present() and self.params.download:
            self._fetch(root)
        if not present():
            raise UserError(
                f"data.root = {self.params.root!r}: FEMNIST not found (looked for {root}/train/*.json "
                f"and {root}/test/*.json, LEAF's layout); set data.download=true, or put LEAF's "
                "femnist data/train and data/test folders there"
            )
        splits = {}
        writers: dict[str, int] = {}
        for split in ("train", "test"):
            xs, ys, owners = [], [], []
            for user, x, y in read_split(root / split):
                owner = writers.setdefault(user, len(writers))
                xs.append(x)
                ys.append(y)
                owners.append(np.full(len(y), owner, np.int64))
            y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
            if len(y) == 0:
                raise UserError(f"data.root = {self.params.root!r}: the {split} split has no samples")
            if y.min() < 0 or y.max() >= CLASSES:
                raise UserError(
                    f"data.root = {self.params.root!r}: the {split} split has label "
                    f"{int(y.min() if y.min() < 0 else y.max())}; FEMNIST's are 0..{CLASSES - 1}"
                )
            splits[split] = (np.concatenate(xs).reshape(-1, 1, SIDE, SIDE), y, np.concatenate(owners))
        x_train, x_test = normalise_in_place(splits["train"][0], splits["test"][0])
        return ArrayData(
            x_train, splits["train"][1], x_test, splits["test"][1], num_classes=CLASSES, owners=splits["train"][2]
        )
