"""The W&B sink on its own (offline W&B, no Ray): a resumed run continues its W&B run, and an
explicit `disabled` is not turned back on by WANDB_MODE."""

import pytest

from edgeweave.platform.config.schema import WandbConfig
from edgeweave.platform.run.rundir import create_run_dir
from edgeweave.platform.run.sinks import WANDB_ID, default_sinks, wandb_mode, wandb_run_id
from tests.helpers import read_wandb_offline

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def no_wandb_env(monkeypatch):
    for key in ("WANDB_MODE", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_DIR"):
        monkeypatch.delenv(key, raising=False)


def log_rounds(cfg, run_dir, rounds, start):
    sinks = default_sinks(cfg, run_dir, start=start)
    for r in rounds:
        sinks.log({"round": r, "test_accuracy": 0.1 * r, "test_loss": 1.0})
    sinks.close(
        {
            "name": cfg.name,
            "strategy": cfg.strategy.name,
            "rounds": rounds[-1] + 1,
            "test_accuracy": 0.5,
            "test_loss": 1.0,
            "virtual_time": 1.0,
            "cumulative_flops": 1.0,
            "wall_seconds": 1.0,
        }
    )


def test_a_resumed_run_continues_its_wandb_run(make_config):
    cfg = make_config(logging={"wandb": {"mode": "offline"}})
    run_dir = create_run_dir(cfg)
    log_rounds(cfg, run_dir, [0, 1], start=0)
    log_rounds(cfg, run_dir, [2, 3], start=2)  # `edgeweave run --resume` after a checkpoint at round 2

    files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2  # W&B keeps each attempt's offline file; `wandb sync` appends them to one run
    first, again = (f.stem.removeprefix("run-") for f in files)
    assert first == again
    assert (run_dir / WANDB_ID).read_text().strip() == first
    assert [[h["round"] for h in read_wandb_offline(f)["history"]] for f in files] == [[0, 1], [2, 3]]


def test_a_fresh_run_gets_a_new_id_and_a_resume_without_one_draws_one(tmp_path):
    first, resumed = wandb_run_id(tmp_path, 0)
    assert not resumed and (tmp_path / WANDB_ID).read_text().strip() == first
    assert wandb_run_id(tmp_path, 5) == (first, True)
    second, resumed = wandb_run_id(tmp_path, 0)  # the run started over: a new W&B run
    assert second != first and not resumed
    (tmp_path / WANDB_ID).unlink()
    third, resumed = wandb_run_id(tmp_path, 5)  # the first attempt logged nowhere
    assert not resumed and (tmp_path / WANDB_ID).read_text().strip() == third


def test_wandb_mode_env_does_not_turn_an_explicit_disabled_on(make_config, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = make_config(logging={"wandb": {"mode": "disabled"}})
    run_dir = create_run_dir(cfg)
    log_rounds(cfg, run_dir, [0, 1], start=0)
    assert not (run_dir / "wandb").exists() and not (run_dir / WANDB_ID).exists()
    assert (run_dir / "metrics.jsonl").read_text().count("\n") == 2


@pytest.mark.parametrize(
    "config, env, mode",
    [
        ("offline", None, "offline"),
        ("offline", "online", "online"),
        ("offline", "disabled", "disabled"),
        ("online", "offline", "offline"),
        ("disabled", "online", "disabled"),
        ("disabled", "offline", "disabled"),
    ],
)
def test_wandb_mode_env_overrides_all_but_disabled(monkeypatch, config, env, mode):
    if env is not None:
        monkeypatch.setenv("WANDB_MODE", env)
    assert wandb_mode(WandbConfig(mode=config)) == mode
