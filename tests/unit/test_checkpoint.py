"""Run checkpoints: round trip, refusal of foreign or corrupt ones, task plans kept, kills mid-save."""

import os

import numpy as np
import pytest
from safetensors.numpy import save_file

from edgeweave.platform.checkpoint import RunState, fingerprint, load_checkpoint, save_checkpoint
from edgeweave.platform.config import dump_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.errors import UserError
from edgeweave.platform.experiment import keep_rounds_before
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
    with pytest.raises(UserError, match="no state.safetensors"):
        load_checkpoint(tmp_path / "nothing", "abc")
    save_file({"weights": np.zeros(3, np.float32)}, str(tmp_path / "ck" / "state.safetensors"),
              metadata={"edgeweave": '{"format": "other"}'})
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


@pytest.mark.parametrize("dies_at_rename", [0, 1])
def test_a_save_killed_at_any_rename_leaves_one_whole_checkpoint(tmp_path, monkeypatch, dies_at_rename):
    save_checkpoint(tmp_path / "ck", RunState(2, np.full(5, 2.0, np.float32), 2.0, 2e9), "abc")
    real_replace, renames = os.replace, []

    def dying_replace(*args):
        renames.append(args)
        if len(renames) > dies_at_rename:
            raise KeyboardInterrupt  # the process is killed here
        real_replace(*args)

    monkeypatch.setattr(os, "replace", dying_replace)
    try:
        save_checkpoint(tmp_path / "ck", RunState(3, np.full(5, 3.0, np.float32), 3.0, 3e9), "abc")
    except KeyboardInterrupt:
        pass
    back = load_checkpoint(tmp_path / "ck", "abc")  # the old state or the new one, never a mix
    assert (back.clock, back.total_flops) == (back.next_round, back.next_round * 1e9)
    np.testing.assert_array_equal(back.weights, np.full(5, float(back.next_round)))


def test_resumed_logs_keep_only_earlier_rounds_and_drop_a_torn_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"round": 0}\n{"round": 1}\n{"round": 2}\n{"round": 3, "test_acc')
    keep_rounds_before(log, 2)
    assert log.read_text() == '{"round": 0}\n{"round": 1}\n'
