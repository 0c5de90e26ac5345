"""Run checkpoints: round trip, refusal of foreign or corrupt ones, task plans kept, kills mid-save."""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

from edgeweave.platform.config.schema import dump_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.data import load_dataset
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.checkpoint import RunState, fingerprint, load_checkpoint, run_fingerprint, save_checkpoint
from edgeweave.platform.run.experiment import keep_rounds_before
from edgeweave.platform.run.server import Server


def test_round_trip_keeps_every_field(tmp_path):
    state = RunState(
        4,
        np.arange(10, dtype=np.float32),
        12.5,
        3e9,
        {"plan.0.keep.0": np.array([1, 3])},
        [{"round": 0, "test_accuracy": None}, {"round": 3, "test_accuracy": 0.5}],
    )
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
    save_file(
        {"weights": np.zeros(3, np.float32)},
        str(tmp_path / "ck" / "state.safetensors"),
        metadata={"edgeweave": '{"format": "other"}'},
    )
    with pytest.raises(UserError, match="not an edgeweave checkpoint"):
        load_checkpoint(tmp_path / "ck", "abc")


def test_fingerprint_ignores_where_outputs_go(make_config):
    a = make_config(logging={"out_dir": "/a", "progress": False})
    b = make_config(logging={"out_dir": "/b", "progress": True})
    c = make_config(training={"lr": 0.5})
    assert fingerprint(dump_config(a)) == fingerprint(dump_config(b)) != fingerprint(dump_config(c))


def test_fingerprint_covers_the_content_of_the_front_and_the_trace(make_config, tmp_path):
    """A run resumed after its front or its trace file changed is refused, in one line naming the file."""
    from tests.unit.test_distreal import real_front

    front, trace = tmp_path / "front.json", tmp_path / "trace.csv"
    trace.write_text("device,time,available,speed\n0,0,1,1.0\n")
    sections = dict(
        model={"name": "cnn", "width": 0.125},
        devices={"count": 6, "per_round": 4, "resources": {"name": "trace", "path": str(trace)}},
        strategy={"name": "distreal", "front": str(front)},
    )
    plain = make_config(**{**sections, "strategy": {"name": "fedavg"}})
    real_front(plain, load_dataset(plain.data, plain.seed), front)
    first = make_config(**sections)
    save_checkpoint(tmp_path / "ck", RunState(1, np.zeros(3, np.float32), 0.0, 0.0), run_fingerprint(first))
    assert load_checkpoint(tmp_path / "ck", run_fingerprint(make_config(**sections))).next_round == 1
    assert run_fingerprint(first) != fingerprint(dump_config(first))  # more than the config's text

    doc = front.read_text()
    edited = json.loads(doc)
    edited["points"][0]["score"] += 1.0  # same path, same config text, other content
    front.write_text(json.dumps(edited))
    changed = make_config(**sections)
    assert dump_config(changed) == dump_config(first) and run_fingerprint(changed) != run_fingerprint(first)
    with pytest.raises(
        UserError,
        match=r"^checkpoint = '.*ck': strategy.front has changed since the checkpoint "
        r"was written; restore the file it was written with to resume, or start a new run$",
    ):
        load_checkpoint(tmp_path / "ck", run_fingerprint(changed))

    front.write_text(doc)
    trace.write_text("device,time,available,speed\n0,0,1,0.5\n")
    with pytest.raises(UserError, match=r"devices.resources.path has changed since the checkpoint was written"):
        load_checkpoint(tmp_path / "ck", run_fingerprint(make_config(**sections)))


def test_server_snapshot_restores_taskwise_plans(make_config, tmp_path):
    cfg = make_config(
        model={"name": "cnn", "width": 0.5},
        devices={"count": 4, "per_round": 4},
        strategy={"name": "taskwise", "groups": 5},
    )
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
    for mine, theirs in zip(server.rules.plans, other.rules.plans):
        np.testing.assert_array_equal(mine.classes, theirs.classes)
        assert all(np.array_equal(a, b) for a, b in zip(mine.keep, theirs.keep))


@pytest.mark.parametrize("killed_while", ["writing", "renaming"])
def test_a_save_killed_midway_keeps_the_previous_checkpoint_whole(tmp_path, monkeypatch, killed_while):
    from edgeweave.platform.run import checkpoint

    save_checkpoint(tmp_path / "ck", RunState(2, np.full(5, 2.0, np.float32), 2.0, 2e9), "abc")
    real_save = checkpoint.save_file

    def dies_writing(tensors, filename, *args, **kwargs):  # killed with half the file on disk
        real_save(tensors, filename, *args, **kwargs)
        os.truncate(filename, os.path.getsize(filename) // 2)
        raise KeyboardInterrupt

    def dies_renaming(*args):  # the new file is whole, the process is killed before it is in place
        raise KeyboardInterrupt

    if killed_while == "writing":
        monkeypatch.setattr(checkpoint, "save_file", dies_writing)
    else:
        monkeypatch.setattr(os, "replace", dies_renaming)
    with pytest.raises(KeyboardInterrupt):  # a save that never renames does not pass here
        save_checkpoint(tmp_path / "ck", RunState(3, np.full(5, 3.0, np.float32), 3.0, 3e9), "abc")
    monkeypatch.undo()
    back = load_checkpoint(tmp_path / "ck", "abc")  # exactly the previous save, not the new one nor a mix
    assert (back.next_round, back.clock, back.total_flops) == (2, 2.0, 2e9)
    np.testing.assert_array_equal(back.weights, np.full(5, 2.0))


def test_resumed_logs_keep_only_earlier_rounds_and_drop_a_torn_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"round": 0}\n{"round": 1}\n{"round": 2}\n{"round": 3, "test_acc')
    keep_rounds_before(log, 2)
    assert log.read_text() == '{"round": 0}\n{"round": 1}\n'


def test_trimming_a_log_for_resume_never_loses_lines_when_killed(tmp_path, monkeypatch):
    from pathlib import Path

    from edgeweave.platform.run.experiment import keep_rounds_before

    log = tmp_path / "devices.jsonl"
    log.write_text("".join(f'{{"round": {r}}}\n' for r in range(5)))
    real = Path.write_text

    def killed(self, text, *a, **k):  # the process dies halfway through the write
        real(self, text[: len(text) // 2], *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        keep_rounds_before(log, 3)
    monkeypatch.undo()
    assert log.read_text().count("\n") == 5  # the log is as it was
    keep_rounds_before(log, 3)
    assert log.read_text().count("\n") == 3
