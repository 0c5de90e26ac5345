"""Sweep files: dimensions, key checks against the base config, trial configs, results table."""

import csv
import math

import numpy as np
import pytest
import yaml

from edgeweave.platform.config.sweep import Dimension, Scheduler, asha_rungs, grid_size, load_sweep, trial_raw
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.report.sweep_results import ordered, plot_tradeoffs, write_table
from tests.helpers import tiny_raw


def sweep_file(tmp_path, **fields):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_raw(tmp_path)))
    raw = {"base": str(tmp_path / "base.yaml"), "space": {"training.lr": {"grid": [0.01, 0.1]}}, **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_grid_size_counts_grid_values_times_samples(tmp_path):
    sweep, base = load_sweep(
        sweep_file(
            tmp_path,
            num_samples=3,
            space={
                "training.lr": {"grid": [0.01, 0.1]},
                "partition": {"grid": [{"policy": "iid"}, {"policy": "shards"}]},
                "training.momentum": {"uniform": [0.0, 0.9]},
            },
        )
    )
    assert grid_size(sweep) == 12
    raw = trial_raw(base, {"training.rounds": 7}, {"training.lr": 0.3, "partition": {"policy": "shards"}})
    assert raw["training"]["rounds"] == 7 and raw["training"]["lr"] == 0.3 and raw["partition"] == {"policy": "shards"}
    assert base["training"]["lr"] == 0.05  # the base is not changed


@pytest.mark.parametrize(
    "space, expected",
    [
        ({"training.lrr": {"grid": [0.1]}}, "sweep space training.lrr = 0.1: training.lrr"),
        ({"partition.policy": {"choice": ["iid", "bogus"]}}, "'bogus'"),
        ({"training.rounds": {"randint": [0, 3]}}, "training.rounds = 0"),
        ({"training.lr": {"loguniform": [0.0, 1.0]}}, "low > 0"),
        ({"training.lr": {"grid": [0.1], "choice": [0.2]}}, "exactly one of"),
        ({}, "at least one key"),
    ],
)
def test_bad_spaces_name_the_key_and_value(tmp_path, space, expected):
    with pytest.raises(UserError) as e:
        load_sweep(sweep_file(tmp_path, space=space))
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_unknown_sweep_field_and_scheduler_checks(tmp_path):
    with pytest.raises(UserError, match="sweep num_sample"):
        load_sweep(sweep_file(tmp_path, num_sample=2))
    with pytest.raises(UserError, match="grace_period = 5: must be at most training.rounds"):
        load_sweep(sweep_file(tmp_path, scheduler={"name": "asha", "grace_period": 5}))


def test_asha_rungs_are_the_rounds_where_tune_records_trials():
    # Tune records a trial at its first report at or past grace_period * reduction_factor**k < max_t.
    assert asha_rungs(Scheduler(name="asha", grace_period=5, reduction_factor=2), 20) == [5, 10]
    assert asha_rungs(Scheduler(name="asha", grace_period=5, reduction_factor=1.5), 20) == [5, 8, 12, 17]
    assert asha_rungs(Scheduler(name="asha", grace_period=4, reduction_factor=2), 4) == []
    assert asha_rungs(Scheduler(name="fifo"), 20) == []


@pytest.mark.parametrize(
    "fields, expected",
    [
        (
            {"set": {"training.rounds": 8, "training.eval_every": 2}, "scheduler": {"name": "asha", "grace_period": 1}},
            "sweep scheduler.grace_period = 1, reduction_factor = 2: asha compares trials after rounds 1, 2, 4, but "
            "training.eval_every = 2 evaluates only after multiples of 2",
        ),
        (
            {
                "set": {"training.rounds": 8, "training.eval_every": 2},
                "scheduler": {"name": "asha", "grace_period": 2, "reduction_factor": 1.5},
            },
            "after rounds 2, 3, 5, 7",
        ),
        (
            {
                "set": {"training.rounds": 8},
                "scheduler": {"name": "asha", "grace_period": 2},
                "space": {"training.eval_every": {"grid": [1, 2, 4]}},
            },
            "sweep space training.eval_every = 4: ",
        ),
        (
            {"scheduler": {"name": "asha"}, "space": {"training.eval_every": {"randint": [1, 4]}}},
            "sweep space training.eval_every: randint under asha; give grid or choice values",
        ),
        (
            {"scheduler": {"name": "asha"}, "space": {"training.rounds": {"grid": [4, 8]}}},
            "sweep space training.rounds = 8: training.rounds = 8, but another trial runs 4",
        ),
    ],
)
def test_asha_rungs_must_be_evaluated_rounds_of_one_length(tmp_path, fields, expected):
    with pytest.raises(UserError) as e:
        load_sweep(sweep_file(tmp_path, **fields))
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"set": {"training.rounds": 8, "training.eval_every": 2}, "scheduler": {"name": "asha", "grace_period": 2}},
        {
            "set": {"training.rounds": 40, "training.eval_every": 5},
            "scheduler": {"name": "asha", "grace_period": 5, "reduction_factor": 3},
        },  # 5, 15 and 45 > 40
        {"set": {"training.rounds": 4, "training.eval_every": 3}, "scheduler": {"name": "fifo"}},
        {
            "scheduler": {"name": "asha"},
            "space": {"training.eval_every": {"choice": [1]}, "training.rounds": {"grid": [2]}},
        },
    ],
)
def test_rungs_on_evaluated_rounds_and_fifo_pass(tmp_path, fields):
    load_sweep(sweep_file(tmp_path, **fields))


def test_every_report_carries_the_last_evaluation():
    from edgeweave.tune.trainable import Reports

    def round_(r, acc, loss, train=0.5):
        return {"round": r, "test_accuracy": acc, "test_loss": loss, "train_loss": train, "ok": True, "tag": "x"}

    reports = Reports()
    first = reports(round_(0, None, None, train=None))
    assert math.isnan(first["test_accuracy"]) and math.isnan(first["test_loss"]) and first["evaluated"] == 0
    assert math.isnan(first["train_loss"]) and "ok" not in first and "tag" not in first
    assert reports(round_(1, 0.6, 1.1)) == {
        "round": 1,
        "test_accuracy": 0.6,
        "test_loss": 1.1,
        "train_loss": 0.5,
        "evaluated": 1,
    }
    carried = reports(round_(2, None, None))
    assert (carried["test_accuracy"], carried["test_loss"], carried["evaluated"]) == (0.6, 1.1, 0)
    # A resumed trial carries from the history its checkpoint holds.
    resumed = Reports([round_(0, None, None), round_(1, 0.7, 0.9), round_(2, None, None)])
    assert resumed(round_(3, None, None))["test_accuracy"] == 0.7


def test_randint_examples_exclude_the_upper_bound():
    assert Dimension(randint=(2, 5)).examples() == [2, 4]
    assert Dimension(uniform=(0.1, 0.5)).examples() == [0.1, 0.5]


def test_results_table_best_first_and_pareto_plot(tmp_path):
    trials = [
        {
            "trial": i,
            "params": {"lr": lr},
            "test_accuracy": acc,
            "cumulative_flops": flops,
            "virtual_time": t,
            "rounds": 5,
            "status": "done",
        }
        for i, (lr, acc, flops, t) in enumerate(
            [(0.1, 0.8, 3e9, 10.0), (0.2, 0.9, 5e9, 30.0), (0.3, None, 1e9, 5.0), (0.4, 0.7, 4e9, 20.0)]
        )
    ]
    best = ordered(trials, "test_accuracy", "max")
    assert [t["trial"] for t in best] == [1, 0, 3, 2]
    assert [t["trial"] for t in ordered(trials, "test_accuracy", "min")] == [3, 0, 1, 2]
    md = write_table(best, ["lr"], tmp_path)
    assert md.splitlines()[2].startswith("| 1 | 0.2 | 0.9000 |")
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [r["trial"] for r in rows] == ["1", "0", "3", "2"] and rows[3]["test_accuracy"] == ""
    assert plot_tradeoffs(best, tmp_path, "t").stat().st_size > 0


def test_pareto_front_of_the_plot_is_the_non_dominated_trials():
    from edgeweave.platform.methods.front import non_dominated

    cost, acc = np.array([3e9, 5e9, 4e9]), np.array([0.8, 0.9, 0.7])
    assert sorted(non_dominated(cost, -acc).tolist()) == [0, 1]  # trial 2 costs more than 0 for less


class Trial:
    """What Ray Tune's result grid holds for one trial; `config` is None for a trial that never started."""

    def __init__(self, config, rounds=None):
        import pandas as pd

        self.config, self.error, self.path = config, None, "/nowhere"
        self.metrics = {"trial_id": "t"} if config is None else {"trial_id": "t", "round": rounds - 1}
        self.metrics_dataframe = None if config is None else pd.DataFrame({"round": range(rounds)})


def test_a_sweep_stopped_before_some_trials_started_says_interrupted(tmp_path):
    """Ctrl+C on a grid larger than the cluster leaves trials Tune created but never started in the grid,
    with no config: the sweep says how to resume it (it raised TypeError)."""
    from edgeweave.tune.runner import finish

    sweep, base = load_sweep(sweep_file(tmp_path, space={"training.lr": {"grid": [0.01, 0.1, 0.2]}}))
    said = []
    grid = [Trial({"training.lr": 0.01}, rounds=2), Trial(None), Trial(None)]
    assert finish(sweep, base, None, grid, tmp_path / "out", said.append) is False
    assert said == [
        f"sweep {sweep.name}: interrupted with 1 of 3 trials finished; continue with: "
        f"edgeweave sweep --resume {tmp_path / 'out'}"
    ]
