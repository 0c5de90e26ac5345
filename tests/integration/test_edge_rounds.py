"""Rounds at the edges, through the real CLI and Ray driver: nobody trains, or training diverges."""

import json

import pytest
import yaml

from edgeweave.cli import main
from tests.helpers import tiny_raw

pytestmark = pytest.mark.integration


def run(tmp_path, **sections) -> tuple[int, list[dict], list[dict]]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_raw(tmp_path, **sections)))
    code = main(["run", str(path)])
    (run_dir,) = (tmp_path / "runs").iterdir()
    read = lambda name: [json.loads(line) for line in (run_dir / name).read_text().splitlines()]  # noqa: E731
    return code, read("metrics.jsonl"), read("devices.jsonl")


def test_rounds_nobody_can_join_are_recorded_and_the_clock_moves_on(local_ray, tmp_path):
    code, metrics, _ = run(
        tmp_path,
        devices={"count": 6, "per_round": 4, "idle_wait": 45.0, "resources": {"name": "uniform", "availability": 0.1}},
        training={"rounds": 6},
    )
    assert code == 0 and [m["round"] for m in metrics] == list(range(6))
    empty = [m for m in metrics if m["devices"] == 0]
    assert empty, "availability 0.1 over 6 devices should leave some round empty"
    for m in empty:
        assert m["samples"] == 0 and m["train_loss"] is None
        assert m["virtual_time"] == pytest.approx(m["virtual_start"] + 45.0)
    times = [m["virtual_time"] for m in metrics]
    assert times == sorted(times) and len(set(times)) == len(times)
    for before, now in zip(metrics, metrics[1:]):  # weights unchanged: the same accuracy again
        if now["devices"] == 0:
            assert now["test_accuracy"] == before["test_accuracy"]


def test_a_round_where_every_device_is_dropped_is_recorded(local_ray, tmp_path):
    # 2e6 FLOP/s: one mini-batch fits the deadline (the run may start), a whole epoch does not.
    code, metrics, devices = run(
        tmp_path, devices={"count": 6, "per_round": 3, "flops_per_second": 2e6, "deadline": 10.0, "stragglers": "drop"}
    )
    assert code == 0 and len(metrics) == 2
    assert all(d["dropped"] for d in devices) and all(m["devices"] == 0 for m in metrics)
    assert [m["virtual_time"] for m in metrics] == pytest.approx([10.0, 20.0])


def test_a_diverging_run_stops_with_one_line_and_keeps_its_files(local_ray, tmp_path, capsys):
    code, metrics, _ = run(tmp_path, training={"rounds": 4, "lr": 1e12})
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    line = [e for e in err if e.startswith("error:")]
    assert len(line) == 1 and "became NaN or infinite" in line[0] and "training.lr" in line[0], err
    stopped = int(line[0].split("round ")[1].split(":")[0])
    assert [m["round"] for m in metrics] == list(range(stopped))
