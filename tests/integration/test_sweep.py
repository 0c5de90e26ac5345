"""Ray Tune sweeps on a real local Ray: ASHA over 4 trials, W&B offline runs, resume, sparse evaluation, failures."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import ray
import yaml
from safetensors.torch import load_file

from edgeweave.cli import main
from edgeweave.platform.config.schema import load_config
from tests.helpers import read_wandb_offline, tiny_raw, wait_for_rounds
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
    sweep = {
        "name": "tiny",
        "base": str(tmp_path / "base.yaml"),
        "out_dir": str(tmp_path / "sweeps"),
        "space": {
            "training.lr": {"grid": [0.02, 0.1]},
            "partition": {"grid": [{"policy": "iid"}, {"policy": "dirichlet", "alpha": 0.3}]},
        },
        **extra,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def trial_dirs(sweep_dir):
    return sorted((sweep_dir / "runs").iterdir())


def wandb_runs(sweep_dir, count, timeout=60.0):
    """The sweep's offline W&B runs by id, once `count` of them are written out and stay unchanged.

    W&B's service process may flush a run's file a little after the run finished (for Tune's
    logging actors, after the actor is gone), so a loaded machine can see it half written.
    """
    deadline, before = time.time() + timeout, None
    while True:
        runs = {
            f.parent.name.rsplit("-", 1)[1]: read_wandb_offline(f)
            for f in (sweep_dir / "wandb").glob("offline-run-*/run-*.wandb")
        }
        written = len(runs) == count and all(r["history"] and r["summary"] for r in runs.values())
        if (written and runs == before) or time.time() > deadline:
            return runs
        before = runs
        time.sleep(1.0)


def test_asha_sweep_writes_table_best_config_and_wandb_runs(tune_ray, tmp_path, capsys):
    path = write_sweep(tmp_path, rounds=2, scheduler={"name": "asha", "grace_period": 1}, checkpoint_every=1)
    assert main(["sweep", str(path)]) == 0
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    assert len(rows) == 4
    accs = [float(r["test_accuracy"]) for r in rows]
    assert accs == sorted(accs, reverse=True)  # best first
    assert sorted((float(r["training.lr"]), yaml.safe_load(r["partition"])["policy"]) for r in rows) == [
        (0.02, "dirichlet"),
        (0.02, "iid"),
        (0.1, "dirichlet"),
        (0.1, "iid"),
    ]
    assert (sweep_dir / "results.md").read_text().count("\n") == 6 and (sweep_dir / "tradeoffs.png").stat().st_size
    assert "| trial |" in capsys.readouterr().out

    best = load_config(sweep_dir / "best.yaml")  # `edgeweave run` accepts it
    assert (
        best.training.lr == float(rows[0]["training.lr"])
        and best.partition.name == yaml.safe_load(rows[0]["partition"])["policy"]
    )

    # Every trial streamed to its own offline W&B run, grouped by the sweep, summary = what Tune got,
    # the ASHA-stopped ones too; one more run holds the table and the plots.
    runs = wandb_runs(sweep_dir, 5)
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
    for change, expected in (
        ({"space": {"training.lrr": {"grid": [0.1]}}}, "training.lrr"),
        ({"space": {"training.lr": {"grid": [-1.0]}}}, "training.lr = -1.0"),
        ({"space": {"training.lr": {"uniform": [0.5, 0.1]}}}, "low < high"),
        ({"scheduler": {"name": "hyperband"}}, "scheduler.name"),
        ({"metric": "accuracy"}, "metric = 'accuracy'"),
        (
            {"scheduler": {"name": "asha", "grace_period": 1}, "set": {"training.eval_every": 2}},
            "training.eval_every = 2",
        ),
    ):
        path.write_text(yaml.safe_dump({**raw, **change}))
        assert main(["sweep", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "sweeps").exists()


def test_interrupted_sweep_resumes_from_checkpoints(tune_ray, tmp_path):
    rounds = 24  # rounds take ~0.1 s: enough of them that Ctrl+C lands inside the first trial
    path = write_sweep(
        tmp_path,
        rounds=rounds,
        checkpoint_every=2,
        max_concurrent_trials=1,
        space={"training.lr": {"grid": [0.02, 0.1]}},
    )
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeweave.cli", "sweep", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not list((tmp_path / "sweeps").glob("*/trials/run_trial_*/checkpoint_000000")):
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            time.sleep(0.1)
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


def run_sweep_process(path, timeout):
    """`edgeweave sweep PATH` in a subprocess on the module's Ray; killed with its children past `timeout` s."""
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeweave.cli", "sweep", str(path)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the sweep did not end within {timeout} s; its last output:\n{out[-3000:]}")
    return proc.returncode, out


def test_sweep_evaluating_every_other_round_reports_the_metric_every_round(tune_ray, tmp_path):
    # Rounds 0 and 2 have no evaluation. Tune requires the metric in every report: without it Tune's
    # loop failed, and its W&B callback then waited 30 minutes for runs that never ended.
    path = write_sweep(
        tmp_path,
        rounds=4,
        set={"training.eval_every": 2},
        scheduler={"name": "fifo"},
        checkpoint_every=2,
        space={"training.lr": {"grid": [0.02, 0.1]}},
    )
    code, out = run_sweep_process(path, timeout=300)
    assert code == 0, out[-3000:]
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    assert len(rows) == 2 and all(r["status"] == "done" and r["rounds"] == "4" for r in rows)
    # The console is the sweep's own view: its progress, then the table; Tune's status tables, the W&B
    # service's messages and their tracebacks (the W&B actors' exit) are in the sweep's log file.
    assert "sweep tiny: 2 of 2 done; 0 running; best test_accuracy" in out and "| trial |" in out
    assert not any(word in out for word in ("Traceback", "wandb:", "Trial status", "WARNING")), out[-3000:]
    assert len(out.splitlines()) < 20
    log = (sweep_dir / "sweep.log").read_text()
    assert "Trial status" in log and "wandb:" in log
    for trial in sorted((sweep_dir / "trials").glob("run_trial_*")):
        reports = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        run = [
            json.loads(line)
            for line in (sweep_dir / "runs" / reports[0]["trial_id"] / "metrics.jsonl").read_text().splitlines()
        ]
        assert [m["test_accuracy"] is not None for m in run] == [False, True, False, True]
        assert [r["evaluated"] for r in reports] == [0, 1, 0, 1]
        assert math.isnan(reports[0]["test_accuracy"]) and math.isnan(reports[0]["test_loss"])  # none yet
        for r in (1, 2):  # round 2 carries round 1's evaluation
            assert (reports[r]["test_accuracy"], reports[r]["test_loss"]) == (
                run[1]["test_accuracy"],
                run[1]["test_loss"],
            )
        assert reports[3]["test_accuracy"] == run[3]["test_accuracy"]
        assert any(float(row["test_accuracy"]) == run[3]["test_accuracy"] for row in rows)
        assert [h["evaluated"] for h in wandb_runs(sweep_dir, 3)[reports[0]["trial_id"]]["history"]] == [0, 1, 0, 1]


def test_a_failing_trial_is_listed_as_failed_and_the_sweep_finishes(tune_ray, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    missing = {"name": "cifar10", "root": str(tmp_path / "no-cifar")}  # the trial raises loading its data
    # One retry (Tune's, meant for a lost node): the trial that raised fails again at once.
    path = write_sweep(tmp_path, rounds=2, space={"data": {"grid": [{"name": "digits"}, missing]}}, trial_retries=1)
    assert main(["sweep", str(path)]) == 1  # finished, with a failure
    out = capsys.readouterr().out
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    rows = {yaml.safe_load(r["data"])["name"]: r for r in csv.DictReader(open(sweep_dir / "results.csv"))}
    assert rows["digits"]["status"] == "done" and float(rows["digits"]["test_accuracy"]) > 0
    assert rows["cifar10"]["status"] == "failed" and rows["cifar10"]["test_accuracy"] == ""
    assert "| failed |" in (sweep_dir / "results.md").read_text()
    assert load_config(sweep_dir / "best.yaml").data.name == "digits"
    failure = next(line for line in out.splitlines() if "failed:" in line)
    assert "data.root" in failure and "error.txt" in failure
    assert f"edgeweave sweep --resume {sweep_dir}" in out
    (marker,) = (sweep_dir / "runs").glob("*/failed.txt")
    assert "data.root" in marker.read_text()


def test_a_sweeps_data_set_is_loaded_once_for_the_trials_that_use_it_and_dropped_after(tune_ray, tmp_path):
    from edgeweave.actors.shared_data import data_store, release_dataset, shared_dataset

    cfg = load_config(write_sweep(tmp_path, rounds=1).parent / "base.yaml")
    store = data_store()

    @ray.remote(num_cpus=0)
    def trial(cfg, name):  # a trial elsewhere takes the reference and reads the data through it
        [ref] = ray.get(store.dataset.remote(cfg, name))
        return ref.hex(), len(ray.get(ref).y_train)

    seen = ray.get([trial.remote(cfg, f"t{i}") for i in range(3)])
    assert len({hex_ for hex_, _ in seen}) == 1 and seen[0][1] > 0 and ray.get(store.loaded.remote()) == 1
    other = cfg.model_copy(update={"seed": cfg.seed + 1})  # another seed draws other data
    assert shared_dataset(store, other, "t3").hex() != seen[0][0] and ray.get(store.loaded.remote()) == 2
    for i in range(3):  # the trials of the first data set end; the other's still runs
        release_dataset(store, f"t{i}")
    assert ray.get(store.held.remote()) == 1
    release_dataset(store, "t3")
    assert ray.get(store.held.remote()) == 0  # nothing kept once no trial needs it
    ray.kill(store)


TUNE_FAILS = """
import sys
from pathlib import Path
from ray import tune
from edgeweave.platform.core.errors import RunFailed
from edgeweave.tune.runner import WandbCallback, fit

def trainable(config):
    tune.report({"round": 0})  # no test_accuracy: Tune's own loop fails

out = Path(sys.argv[1])
tuner = tune.Tuner(trainable, tune_config=tune.TuneConfig(metric="test_accuracy", mode="max"),
                   run_config=tune.RunConfig(name="trials", storage_path=str(out), verbose=0,
                                             callbacks=[WandbCallback(project="t", mode="offline", dir=str(out))]))
try:
    fit(tuner, out)
except RunFailed as e:
    print(f"error: {e}")
    sys.exit(1)
"""


def test_a_failure_of_tune_itself_ends_the_sweep_with_one_line(tune_ray, tmp_path):
    # Tune's W&B callback used to wait 30 minutes for the W&B runs of trials Tune never ended.
    env = {
        **os.environ,
        "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "PYTHONPATH": os.getcwd(),
        "WANDB_MODE": "offline",
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", TUNE_FAILS, str(tmp_path)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"Tune's failure did not end the sweep within 180 s:\n{proc.communicate()[0][-3000:]}")
    assert proc.returncode == 1, out[-3000:]
    (line,) = [line for line in out.splitlines() if line.startswith("error: ")]
    assert "did not include the specified metric(s) `test_accuracy`" in line and "--resume" in line
    assert "Result: {" not in line


def test_a_trial_that_loses_its_driver_goes_on_from_its_checkpoint(tune_ray, tmp_path):
    # On a cluster the driver's node can go while the trial's process still lives long enough to see it (the
    # process that dies with the node may write first): that is a lost trial, retried, not a trial that raised.
    path = write_sweep(
        tmp_path,
        rounds=6,
        checkpoint_every=2,
        trial_retries=2,
        scheduler={"name": "fifo"},
        set={"training.local_steps": 60, "logging.wandb.mode": "disabled"},
        space={"training.lr": {"grid": [0.05]}},
    )
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeweave.cli", "sweep", str(path)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_rounds(tmp_path / "sweeps", "*/runs/*/metrics.jsonl", 3, proc)
        (driver,) = subprocess.run(["pgrep", "-f", "^ray::Driver"], capture_output=True, text=True).stdout.split()
        os.kill(int(driver), signal.SIGKILL)  # as when its node goes; the trial's process stays
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out[-3000:]
    (sweep_dir,) = (tmp_path / "sweeps").iterdir()
    (row,) = list(csv.DictReader(open(sweep_dir / "results.csv")))
    assert row["status"] == "done" and row["rounds"] == "6"
    (run_dir,) = trial_dirs(sweep_dir)
    assert not (run_dir / "failed.txt").exists()
    assert [json.loads(line)["round"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == list(
        range(6)
    )


def test_a_trial_run_again_from_scratch_starts_its_logs_empty(tune_ray, tmp_path, monkeypatch):
    # Tune runs a trial lost before its first checkpoint again from scratch, in the same run directory:
    # its logs read rounds 0, 1, 0, 1, 2 and the plots and `edgeweave report` counted the lost rounds twice.
    # The trainable runs here in-process, with Tune's session calls stood in for.
    from ray import tune

    from edgeweave.actors.shared_data import data_store
    from edgeweave.platform.core.errors import RunLost
    from edgeweave.tune.trainable import run_trial

    monkeypatch.setenv("WANDB_MODE", "disabled")
    rounds, reports = 3, []

    def report(metrics, checkpoint=None):
        if lost and metrics["round"] == 1:
            raise RunLost("the trial's node left")  # after round 1 was logged, before any checkpoint
        reports.append(metrics["round"])

    monkeypatch.setattr(tune, "get_context", lambda: type("Context", (), {"get_trial_id": lambda self: "t0"})())
    monkeypatch.setattr(tune, "get_checkpoint", lambda: None)  # no checkpoint yet: Tune starts the trial afresh
    monkeypatch.setattr(tune, "report", report)
    fixed = {
        "ray.num_workers": 1,
        "logging.progress": False,
        "logging.checkpoint_every": 10,
        "logging.wandb.mode": "disabled",
    }
    base = tiny_raw(tmp_path, training={"rounds": rounds})
    store, lost = data_store(), True
    with pytest.raises(RunLost):
        run_trial({}, base, fixed, str(tmp_path / "sweep"), store=store)
    run_dir = tmp_path / "sweep" / "runs" / "t0"
    assert [json.loads(line)["round"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    assert ray.get(store.held.remote()) == 0  # a trial that ends, lost or not, gives its data set back
    lost, reports[:] = False, []
    run_trial({}, base, fixed, str(tmp_path / "sweep"), store=store)
    assert ray.get(store.held.remote()) == 0 and ray.get(store.loaded.remote()) == 2
    ray.kill(store)
    assert reports == list(range(rounds))
    assert [json.loads(line)["round"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2]
    records = [json.loads(line) for line in (run_dir / "devices.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == sorted(r["round"] for r in records)
    assert len({(r["round"], r["device"]) for r in records}) == len(records) and records[-1]["round"] == 2
