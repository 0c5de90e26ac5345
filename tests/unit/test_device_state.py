"""The store of what devices keep between rounds: rows in memory or memory-mapped on disk, the same either way,
and a population whose state fits neither refused in one line before anything is written."""

import shutil
from collections import namedtuple

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeweave.cli import main
from edgeweave.platform.run import device_state
from edgeweave.platform.run.device_state import DeviceStates
from tests.helpers import tiny_raw


@settings(max_examples=25, deadline=None)
@given(
    population=st.integers(1, 40),
    sizes=st.dictionaries(st.sampled_from(["a", "b", "control"]), st.integers(1, 300), min_size=1),
    seed=st.integers(0, 2**31 - 1),
)
def test_rows_read_back_as_written_in_memory_and_on_disk(population, sizes, seed):
    g = np.random.default_rng(seed)
    memory, disk = DeviceStates(population, sizes, "m"), DeviceStates(population, sizes, "m", memory=0)
    assert not memory.on_disk and disk.on_disk
    written = {}
    for device in g.choice(population, size=min(population, 7), replace=False).tolist():
        arrays = {k: g.normal(size=n).astype(np.float32) for k, n in sizes.items()}
        memory.put(device, arrays)
        disk.put(device, arrays)
        written[device] = arrays
    for device in range(population):
        for store in (memory, disk):
            got = store.get(device)
            if device not in written:
                assert got == {}  # never written: the method starts it itself
                continue
            assert set(got) == set(sizes)
            for k in sizes:
                np.testing.assert_array_equal(got[k], written[device][k])
    moved = DeviceStates(population, sizes, "m", memory=0)
    moved.load_state(memory.state())  # a checkpoint of the memory store, resumed into one on disk
    for device in written:
        for k in sizes:
            np.testing.assert_array_equal(moved.get(device)[k], written[device][k])


def test_a_row_of_the_wrong_shape_or_name_is_refused():
    store = DeviceStates(3, {"control": 4}, "m")
    with pytest.raises(ValueError, match="has 5 elements, the method declared 4"):
        store.put(0, {"control": np.zeros(5)})
    with pytest.raises(ValueError, match=r"state arrays \['other'\], the method declared \['control'\]"):
        store.put(0, {"other": np.zeros(4)})


def test_state_that_fits_neither_memory_nor_disk_is_refused_before_the_run_writes_anything(
    tmp_path, monkeypatch, capsys
):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(tiny_raw(tmp_path, strategy={"name": "scaffold"})))
    monkeypatch.setattr(device_state, "free_memory", lambda: 1000.0)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 5000, 5000))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: strategy.name = 'scaffold': its device state needs ")
    assert "6 devices x " in err[0] and "twice in the checkpoints" in err[0] and "which has 5 kB free" in err[0]
    assert not (tmp_path / "runs").exists()


def test_a_store_on_disk_passes_by_its_file_and_checkpoints_without_a_copy_through_memory(tmp_path):
    import pickle

    from edgeweave.platform.run.checkpoint import RunState, load_checkpoint, save_checkpoint

    g = np.random.default_rng(4)
    disk = DeviceStates(50, {"control": 20_000}, "m", memory=0)
    rows = {d: g.normal(size=20_000).astype(np.float32) for d in (0, 7, 49)}
    for d, r in rows.items():
        disk.put(d, {"control": r})
    state = disk.state()
    assert len(pickle.dumps(state)) < 1_000  # 4 MB of rows travel as a path (a run's driver to its run loop)
    save_checkpoint(tmp_path / "ck", RunState(3, np.zeros(4, np.float32), 0.0, 0.0, devices=state), "x")
    back = load_checkpoint(tmp_path / "ck", "x")
    assert len(pickle.dumps(back.devices)) < 1_000
    for store in (DeviceStates(50, {"control": 20_000}, "m"), DeviceStates(50, {"control": 20_000}, "m", memory=0)):
        store.load_state(back.devices)
        assert store.seen.sum() == 3
        for d, r in rows.items():
            np.testing.assert_array_equal(store.get(d)["control"], r)


def test_a_store_on_disk_is_removed_when_closed_or_when_its_process_is_gone(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{device_state.SPILL}{int(dead.stdout)}-abc"
    stale.mkdir()
    (stale / "control.npy").write_bytes(b"x" * 100)
    mine = tmp_path / f"{device_state.SPILL}{__import__('os').getpid()}-def"  # a store of a process still running
    mine.mkdir()
    store = DeviceStates(4, {"control": 8}, "m", memory=0, folder=str(tmp_path))
    assert not stale.exists() and mine.exists()
    (folder,) = [p for p in tmp_path.iterdir() if p not in (mine,)]
    store.close()
    assert not folder.exists()


def test_a_checkpoint_missing_an_array_of_the_store_is_one_line(tmp_path):
    from edgeweave.platform.core.errors import UserError

    store = DeviceStates(3, {"control": 4, "other": 2}, "m")
    with pytest.raises(UserError, match=r"^checkpoint: its device state lacks other \(damaged"):
        store.load_state({"seen": np.zeros(3, bool), "control": np.zeros((3, 4), np.float32)})
