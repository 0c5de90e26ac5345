"""Files a run or a resume depends on reach the disk before they replace the old ones: the new file is
synced, renamed into place, and its folder synced (else a power loss can leave an empty or an old file)."""

import os
from pathlib import Path

import numpy as np
import pytest

from edgeweave.platform.models import build_model
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.run.checkpoint import RunState, save_checkpoint
from edgeweave.platform.run.experiment import keep_rounds_before
from edgeweave.platform.run.rundir import create_run_dir, save_weights


@pytest.fixture
def synced(monkeypatch):
    """The paths os.fsync was called on, in order (a renamed file is listed under its final name)."""
    paths: list[Path] = []
    real = os.fsync

    def recording(fd: int) -> None:
        paths.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return paths


def assert_durable(synced: list[Path], path: Path) -> None:
    """The file's content was synced (under its temporary name, before the rename), then its folder."""
    temporary = path.with_name(f".{path.name}.tmp")
    assert temporary in synced or path in synced, synced
    file_at = synced.index(temporary if temporary in synced else path)
    assert path.parent in synced[file_at + 1 :], synced


def test_a_checkpoint_is_synced_with_its_folder(synced, tmp_path):
    save_checkpoint(tmp_path / "ck", RunState(1, np.zeros(3, np.float32), 0.0, 0.0), "abc")
    assert_durable(synced, tmp_path / "ck" / "state.safetensors")


def test_final_weights_and_the_run_config_are_synced_with_their_folder(synced, make_config, tmp_path):
    cfg = make_config()
    run_dir = create_run_dir(cfg)
    assert_durable(synced, run_dir / "config.yaml")
    model = build_model(cfg.model, (1, 8, 8), 10, seed=0)
    save_weights(run_dir / "model.safetensors", model, np.zeros(FlatLayout(model).size, np.float32))
    assert_durable(synced, run_dir / "model.safetensors")


def test_a_log_trimmed_for_a_resume_is_synced_with_its_folder(synced, tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"round": 0}\n{"round": 1}\n')
    keep_rounds_before(log, 1)
    assert_durable(synced, log)


def test_a_front_and_the_wandb_id_are_synced_with_their_folder(synced, tmp_path):
    from edgeweave.platform.methods.front import Front
    from edgeweave.platform.run.sinks import WANDB_ID, wandb_run_id
    from edgeweave.platform.search.dse import store

    wandb_run_id(tmp_path, 0)
    assert_durable(synced, tmp_path / WANDB_ID)
    synced.clear()
    front = Front(np.array([[0.0, 0.5]]), np.array([1.0]), np.array([2.0]), {})
    store(front, [], tmp_path / "front.json", lambda path: path.write_bytes(b"png"))
    written = [tmp_path / f".front.tmp{suffix}" for suffix in (".csv", ".png", ".json")]  # the json, read by runs, last
    assert synced == [p for w in written for p in (w, tmp_path)]
