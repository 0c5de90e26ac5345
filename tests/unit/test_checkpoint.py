"""Run checkpoints: round trip, refusal of foreign or corrupt ones, task plans kept."""

import numpy as np
import pytest

from edgeweave.platform.checkpoint import RunState, fingerprint, load_checkpoint, save_checkpoint
from edgeweave.platform.config import dump_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.errors import UserError
from edgeweave.platform.partition import partition_data
from edgeweave.platform.server import Server


def test_round_trip_keeps_every_field(tmp_path):
    state = RunState(4, np.arange(10, dtype=np.float32), 12.5, 3e9, {"plan.0.keep.0": np.array([1, 3])},
                     [{"round": 0, "test_accuracy": None}, {"round": 3, "test_accuracy": 0.5}])
    save_checkpoint(tmp_path / "ck", state, "abc")
    back = load_checkpoint(tmp_path / "ck", "abc")
    assert (back.next_round, back.clock, back.total_flops, back.history) == (4, 12.5, 3e9, state.history)
    np.testing.assert_array_equal(back.weights, state.weights)
    np.testing.assert_array_equal(back.strategy["plan.0.keep.0"], [1, 3])
    assert not list((tmp_path / "ck").glob(".*tmp"))


def test_foreign_corrupt_and_missing_checkpoints_are_refused(tmp_path):
    save_checkpoint(tmp_path / "ck", RunState(1, np.zeros(3, np.float32), 0.0, 0.0), "abc")
    with pytest.raises(UserError, match="another config"):
        load_checkpoint(tmp_path / "ck", "xyz")
    (tmp_path / "ck" / "state.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(UserError, match="unreadable"):
        load_checkpoint(tmp_path / "ck", "abc")
    with pytest.raises(UserError, match="no state.json"):
        load_checkpoint(tmp_path / "nothing", "abc")
    (tmp_path / "ck" / "state.json").write_text('{"format": "other"}')
    save_checkpoint(tmp_path / "ok", RunState(1, np.zeros(3, np.float32), 0.0, 0.0), "abc")
    (tmp_path / "ck" / "state.safetensors").write_bytes((tmp_path / "ok" / "state.safetensors").read_bytes())
    with pytest.raises(UserError, match="not an edgeweave checkpoint"):
        load_checkpoint(tmp_path / "ck", "abc")


def test_fingerprint_ignores_where_outputs_go(make_config):
    a = make_config(logging={"out_dir": "/a", "progress": False})
    b = make_config(logging={"out_dir": "/b", "progress": True})
    c = make_config(training={"lr": 0.5})
    assert fingerprint(dump_config(a)) == fingerprint(dump_config(b)) != fingerprint(dump_config(c))


def test_server_snapshot_restores_taskwise_plans(make_config, tmp_path):
    cfg = make_config(model={"name": "cnn", "width": 0.5}, devices={"count": 4, "per_round": 4},
                      strategy={"name": "taskwise", "groups": 5})
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    server = Server(cfg, data, part)
    server.plan(0)
    server.clock, server.total_flops = 7.0, 1e9
    save_checkpoint(tmp_path / "ck", server.snapshot(1, []), "f")
    other = Server(cfg, data, part)
    other.restore(load_checkpoint(tmp_path / "ck", "f"))
    assert other.clock == 7.0 and other.total_flops == 1e9
    np.testing.assert_array_equal(other.weights, server.weights)
    for mine, theirs in zip(server.strategy.plans, other.strategy.plans):
        np.testing.assert_array_equal(mine.classes, theirs.classes)
        assert all(np.array_equal(a, b) for a, b in zip(mine.keep, theirs.keep))
