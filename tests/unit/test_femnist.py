"""FEMNIST in LEAF's layout (generated here), its writers, and the natural partition."""

import json

import numpy as np
import pytest

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.data import load_dataset
from edgeweave.platform.partition import partition_data
from tests.helpers import tiny_raw


def write_leaf(root, writers=6, files=2, seed=0):
    """LEAF's femnist layout: each writer's samples split between train and test, writers spread over files."""
    g = np.random.default_rng(seed)
    expected = {"train": [], "test": []}
    for split, per in (("train", (3, 7)), ("test", (1, 3))):
        (root / split).mkdir(parents=True)
        names = [f"f{w:04d}_{w % 10:02d}" for w in range(writers)]
        for f, part in enumerate(np.array_split(names, files)):
            data = {}
            for user in part.tolist():
                n = int(g.integers(*per))
                y = g.integers(0, 62, n)
                data[user] = {"x": g.random((n, 784)).round(3).tolist(), "y": y.tolist()}
                expected[split] += [(user, int(c)) for c in y]
            doc = {"users": part.tolist(), "num_samples": [len(data[u]["y"]) for u in part], "user_data": data}
            (root / split / f"all_data_{f}_niid_0_keep_0_{split}_9.json").write_text(json.dumps(doc))
    return expected


def cfg(tmp_path, root, **extra):
    raw = tiny_raw(tmp_path)
    raw["data"] = {"name": "femnist", "root": str(root)}
    raw["model"] = {"name": "cnn", "width": 0.25}
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    return build_config(raw)


def test_leaf_layout_loads_with_its_writers(tmp_path):
    expected = write_leaf(tmp_path / "femnist")
    c = cfg(tmp_path, tmp_path / "femnist")
    d = load_dataset(c.data, c.seed)
    assert d.num_classes == 62 and d.input_shape == (1, 28, 28)
    assert d.y_train.tolist() == [y for _, y in expected["train"]]
    assert d.y_test.tolist() == [y for _, y in expected["test"]]
    writers = sorted({u for u, _ in expected["train"]})
    assert sorted(np.unique(d.owners).tolist()) == list(range(len(writers)))
    for w, user in enumerate(writers):  # writers are numbered in file order, each sample keeps its own
        assert (d.owners == w).sum() == sum(u == user for u, _ in expected["train"])


def test_natural_partition_gives_each_device_one_writer(tmp_path):
    write_leaf(tmp_path / "femnist", writers=8)
    c = cfg(tmp_path, tmp_path / "femnist", devices={"count": 5, "per_round": 2})
    d = load_dataset(c.data, c.seed)
    part = partition_data(
        build_config({**c.to_dict(), "partition": {"policy": "natural"}}).partition, d.y_train, 5, c.seed, d.owners
    )
    owners = [set(d.owners[part.shard(k)].tolist()) for k in range(5)]
    assert all(len(o) == 1 for o in owners) and len(set.union(*owners)) == 5
    for k, (o,) in enumerate(owners):  # every sample of its writer
        assert np.array_equal(part.shard(k), np.flatnonzero(d.owners == o))
    again = partition_data(
        build_config({**c.to_dict(), "partition": {"policy": "natural"}}).partition, d.y_train, 5, c.seed, d.owners
    )
    assert np.array_equal(again.indices, part.indices)


def test_natural_partition_refuses_more_devices_than_writers_and_data_without_owners(tmp_path):
    write_leaf(tmp_path / "femnist", writers=4)
    c = cfg(tmp_path, tmp_path / "femnist", partition={"policy": "natural"})
    d = load_dataset(c.data, c.seed)
    with pytest.raises(
        UserError,
        match=r"^devices.count = 6: partition 'natural' makes one device per owner, "
        r"and the data has 4; use at most 4 devices$",
    ):
        partition_data(c.partition, d.y_train, 6, c.seed, d.owners)
    with pytest.raises(UserError, match=r"^partition.policy = 'natural': this data set does not say who made"):
        partition_data(c.partition, d.y_train, 3, c.seed, None)


def test_missing_or_malformed_femnist_is_one_line(tmp_path):
    c = cfg(tmp_path, tmp_path / "nothing")
    with pytest.raises(UserError, match=r"FEMNIST not found .*set data.download=true"):
        load_dataset(c.data, c.seed)
    write_leaf(tmp_path / "bad")
    (tmp_path / "bad" / "train" / "zz.json").write_text('{"users": ["a"], "user_data": {}}')
    with pytest.raises(UserError, match=r"zz.json is not a LEAF FEMNIST file \(KeyError"):
        load_dataset(cfg(tmp_path, tmp_path / "bad").data, 0)


def test_published_hdf5_converts_to_the_leaf_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    from edgeweave.platform.data.femnist import h5_to_leaf, read_split

    g = np.random.default_rng(0)
    made = {}
    with h5py.File(tmp_path / "train.h5", "w") as f:
        for w in ("f0001_07", "f0002_11", "f0003_02"):
            n = int(g.integers(2, 5))
            made[w] = (g.random((n, 28, 28)).astype(np.float32), g.integers(0, 62, n).astype(np.int32))
            f.create_dataset(f"examples/{w}/pixels", data=made[w][0])
            f.create_dataset(f"examples/{w}/label", data=made[w][1])
    h5_to_leaf(tmp_path / "train.h5", tmp_path / "leaf" / "train", users_per_file=2)
    assert len(list((tmp_path / "leaf" / "train").glob("*.json"))) == 2
    back = {u: (x, y) for u, x, y in read_split(tmp_path / "leaf" / "train")}
    assert sorted(back) == sorted(made)
    for w, (x, y) in made.items():
        np.testing.assert_array_equal(back[w][0], x.reshape(-1, 784))
        np.testing.assert_array_equal(back[w][1], y)


def fake_archive(g, h5py):
    """What `urlretrieve` writes: the published tar.bz2 holding both HDF5 splits (here 3 writers each)."""

    def retrieve(url, path):
        folder = path.parent / "made"
        folder.mkdir()
        for name in ("fed_emnist_train.h5", "fed_emnist_test.h5"):
            with h5py.File(folder / name, "w") as f:
                for w in ("f0001_07", "f0002_11", "f0003_02"):
                    f.create_dataset(f"examples/{w}/pixels", data=g.random((3, 28, 28)).astype(np.float32))
                    f.create_dataset(f"examples/{w}/label", data=g.integers(0, 62, 3).astype(np.int32))
        import tarfile

        with tarfile.open(path, "w:bz2") as tar:
            for name in ("fed_emnist_train.h5", "fed_emnist_test.h5"):
                tar.add(folder / name, arcname=name)

    return retrieve


def test_download_converts_the_published_files_and_an_interrupted_one_leaves_nothing_half(tmp_path, monkeypatch):
    h5py = pytest.importorskip("h5py")
    from edgeweave.platform.data import femnist

    g = np.random.default_rng(0)
    monkeypatch.setattr(femnist.urllib.request, "urlretrieve", fake_archive(g, h5py))
    real = femnist.h5_to_leaf

    def fail_on_test(h5, out, *a):
        if "test" in h5.name:
            raise KeyboardInterrupt
        real(h5, out, *a)

    monkeypatch.setattr(femnist, "h5_to_leaf", fail_on_test)
    c = cfg(tmp_path, tmp_path / "femnist")
    choice = build_config(
        {**c.to_dict(), "data": {"name": "femnist", "root": str(tmp_path / "femnist"), "download": True}}
    ).data
    with pytest.raises(KeyboardInterrupt):
        load_dataset(choice, 0)
    assert not (tmp_path / "femnist" / "train").exists() and not (tmp_path / "femnist" / "test").exists()
    monkeypatch.setattr(femnist, "h5_to_leaf", real)
    d = load_dataset(choice, 0)
    assert len(d.y_train) == 9 and len(d.y_test) == 9 and sorted(set(d.owners.tolist())) == [0, 1, 2]
    assert sorted(p.name for p in (tmp_path / "femnist").iterdir()) == ["test", "train"]
