"""Ray Tune sweeps on a real local Ray: ASHA over 4 trials, W&B offline runs, and resume."""

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file

from edgeweave.cli import main
from edgeweave.platform.config import load_config
from tests.helpers import read_wandb_offline, tiny_raw
from tests.integration.conftest import local_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tune_ray():
    # 4 logical CPUs on the 2-core machine: two trials (one bundle each + one worker) at a time.
    with local_cluster(4):
        yield


def write_sweep(tmp_path, rounds, **extra):
    base = tiny_raw(tmp_path, training={"rounds": rounds}, logging={"wandb": {"mode": "offline"}})
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    sweep = {"name": "tiny", "base": str(tmp_path / "base.yaml"), "out_dir": str(tmp_path / "sweeps"),
             "space": {"training.lr": {"grid": [0.02, 0.1]}, "partition": {"grid": [{"policy": "iid"},
                                                                                  {"policy": "dirichlet",
                                                                                   "alpha": 0.3}]}},
             **extra}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def trial_dirs(sweep_dir):
    return sorted((sweep_dir / "runs").iterdir())


def test_asha_sweep_writes_table_best_config_and_wandb_runs(tune_ray, tmp_path, capsys):
    path = write_sweep(tmp_path, rounds=2, scheduler={"name": "asha", "grace_period": 1}, checkpoint_every=1)
    assert main(["sweep", str(path)]) == 0
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    assert len(rows) == 4
    accs = [float(r["test_accuracy"]) for r in rows]
    assert accs == sorted(accs, reverse=True)  # best first
    assert sorted((float(r["training.lr"]), yaml.safe_load(r["partition"])["policy"]) for r in rows) == [
        (0.02, "dirichlet"), (0.02, "iid"), (0.1, "dirichlet"), (0.1, "iid")]
    assert (sweep_dir / "results.md").read_text().count("\n") == 6 and (sweep_dir / "tradeoffs.png").stat().st_size
    assert "| trial |" in capsys.readouterr().out

    best = load_config(sweep_dir / "best.yaml")  # `edgeweave run` accepts it
    assert best.training.lr == float(rows[0]["training.lr"]) and best.partition.name == yaml.safe_load(rows[0]["partition"])["policy"]

    # Every trial streamed to its own offline W&B run, grouped by the sweep, summary = what Tune got,
    # the ASHA-stopped ones too; one more run holds the table and the plots.
    runs = {f.parent.name.rsplit("-", 1)[1]: read_wandb_offline(f)
            for f in (sweep_dir / "wandb").glob("offline-run-*/run-*.wandb")}
    assert len(runs) == 5
    for trial in trial_dirs(sweep_dir):
        logged = runs.pop(trial.name)
        metrics = [yaml.safe_load(line) for line in (trial / "metrics.jsonl").read_text().splitlines()]
        assert [h["round"] for h in logged["history"]] == [m["round"] for m in metrics]
        assert logged["summary"]["test_accuracy"] == pytest.approx(metrics[-1]["test_accuracy"])
        assert any(abs(float(r["test_accuracy"]) - metrics[-1]["test_accuracy"]) < 1e-9 for r in rows)
    (results,) = runs.values()
    assert {"results", "tradeoffs"} <= {k.split("/")[0] for k in results["summary"]}
    run_cfg = load_config(trial_dirs(sweep_dir)[0] / "config.yaml")
    assert run_cfg.ray.num_workers == 1 and run_cfg.training.lr in (0.02, 0.1)


def test_bad_sweep_files_get_one_line_and_exit_2(tmp_path, capsys):
    path = write_sweep(tmp_path, rounds=2)
    raw = yaml.safe_load(path.read_text())
    for change, expected in (({"space": {"training.lrr": {"grid": [0.1]}}}, "training.lrr"),
                             ({"space": {"training.lr": {"grid": [-1.0]}}}, "training.lr = -1.0"),
                             ({"space": {"training.lr": {"uniform": [0.5, 0.1]}}}, "low < high"),
                             ({"scheduler": {"name": "hyperband"}}, "scheduler.name"),
                             ({"metric": "accuracy"}, "metric = 'accuracy'")):
        path.write_text(yaml.safe_dump({**raw, **change}))
        assert main(["sweep", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "sweeps").exists()


def test_interrupted_sweep_resumes_from_checkpoints(tune_ray, tmp_path):
    rounds = 8
    path = write_sweep(tmp_path, rounds=rounds, checkpoint_every=2, max_concurrent_trials=1,
                       space={"training.lr": {"grid": [0.02, 0.1]}})
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "edgeweave.cli", "sweep", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not list((tmp_path / "sweeps").glob("*/trials/run_trial_*/checkpoint_000000")):
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # Ctrl+C: Tune saves its state and stops
        assert proc.wait(timeout=120) == 1  # interrupted, says how to resume
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    assert not (sweep_dir / "results.csv").exists()  # no table of a half-done sweep
    first = trial_dirs(sweep_dir)[0]
    assert 0 < len((first / "metrics.jsonl").read_text().splitlines()) < rounds

    assert main(["sweep", "--resume", str(sweep_dir)]) == 0
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    assert len(rows) == 2 and all(r["status"] == "done" and r["rounds"] == str(rounds) for r in rows)
    metrics = [yaml.safe_load(line) for line in (first / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == list(range(rounds))  # the interrupted rounds were redone once

    # The resumed trial ends exactly where an uninterrupted run of its config ends.
    cfg_path = first / "config.yaml"
    out = tmp_path / "again"
    assert main(["run", str(cfg_path), "--set", f"logging.out_dir={out}", "--set", "logging.wandb.mode=disabled"]) == 0
    (again,) = out.iterdir()
    resumed, fresh = load_file(first / "model.safetensors"), load_file(again / "model.safetensors")
    for k in fresh:
        np.testing.assert_array_equal(resumed[k].numpy(), fresh[k].numpy())
