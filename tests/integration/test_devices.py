"""Tiered devices on markov traces under each straggler policy, on a real local Ray."""

import json

import numpy as np
import pytest

from edgeweave.cli import main
from edgeweave.platform.config.schema import load_config
from tests.helpers import run_without_ray

pytestmark = pytest.mark.integration


def run(tmp_path, policy, rounds=4):
    out = tmp_path / policy
    code = main(
        [
            "run",
            "configs/devices_markov.yaml",
            "--set",
            f"devices.stragglers={policy}",
            "--set",
            f"training.rounds={rounds}",
            "--set",
            f"logging.out_dir={out}",
            "--set",
            "logging.progress=false",
            "--set",
            "logging.wandb.mode=disabled",
        ]
    )
    assert code == 0
    (run_dir,) = out.iterdir()
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    records = [json.loads(line) for line in (run_dir / "devices.jsonl").read_text().splitlines()]
    return run_dir, metrics, records


def test_drop_and_partial_follow_the_deadline(local_ray, tmp_path):
    deadline = load_config("configs/devices_markov.yaml").devices.deadline
    for policy in ("drop", "partial"):
        run_dir, metrics, records = run(tmp_path, policy)
        assert (run_dir / "accuracy.png").stat().st_size > 0 and (run_dir / "devices.png").stat().st_size > 0
        assert len(records) == 4 * 10
        starts = {m["round"]: m["virtual_start"] for m in metrics}
        for r in records:
            assert set(r) >= {
                "device",
                "tier",
                "speed",
                "speed_min",
                "speed_max",
                "stopped",
                "steps",
                "flops",
                "trained_flops",
                "finish",
                "dropped",
            }
            if r["dropped"]:
                assert r["steps"] == 0 and r["samples"] == 0 and r["trained_flops"] == 0
                assert r["flops"] > 0 or r["stopped"] == "offline"  # offline before it computed anything
            else:
                assert r["finish"] - starts[r["round"]] <= deadline + 1e-9
                assert r["samples"] > 0
        weak = [r for r in records if r["tier"] == "weak"]
        strong = [r for r in records if r["tier"] == "strong"]
        cut = (lambda r: r["dropped"]) if policy == "drop" else (lambda r: r["partial"] or r["dropped"])
        assert sum(map(cut, weak)) / len(weak) > sum(map(cut, strong)) / max(len(strong), 1)
        for m in metrics:
            assert m["virtual_time"] - m["virtual_start"] <= deadline + 1e-9
        assert [m["cumulative_flops"] for m in metrics] == sorted(m["cumulative_flops"] for m in metrics)
        assert metrics[-1]["cumulative_flops"] == pytest.approx(sum(r["flops"] for r in records))


def test_wait_trains_everyone_and_lasts_as_long_as_the_slowest(local_ray, tmp_path):
    _, metrics, records = run(tmp_path, "wait", rounds=2)
    assert not any(r["dropped"] or r["partial"] for r in records)
    for m in metrics:
        finishes = [r["finish"] for r in records if r["round"] == m["round"]]
        assert m["virtual_time"] == pytest.approx(max(finishes))


@pytest.mark.parametrize("strategy", ["heterofl", "fjord"])
def test_width_baselines_record_widths_and_flops_by_tier(local_ray, tmp_path, strategy):
    out = tmp_path / strategy
    code = main(
        [
            "run",
            f"configs/baselines/{strategy}_digits.yaml",
            "--set",
            "training.rounds=3",
            "--set",
            f"logging.out_dir={out}",
            "--set",
            "logging.progress=false",
            "--set",
            "logging.wandb.mode=disabled",
        ]
    )
    assert code == 0
    (run_dir,) = out.iterdir()
    records = [json.loads(line) for line in (run_dir / "devices.jsonl").read_text().splitlines()]
    rates = load_config(run_dir / "config.yaml").strategy.rates
    per_sample = {}
    for r in records:
        assert r["rate"] == rates[r["tier"]]
        per_sample.setdefault(r["tier"], set()).add(round(r["trained_flops"] / r["samples"]))
    if strategy == "heterofl":  # one fixed sub-model per tier
        assert all(len(v) == 1 for v in per_sample.values())
    assert max(per_sample["strong"]) > max(per_sample["medium"]) > max(per_sample["weak"])
    assert all(r["samples"] > 0 and r["loss"] is not None for r in records)


def test_distreal_devices_adapt_to_their_tier(local_ray, tmp_path):
    out = tmp_path / "distreal"
    code = main(
        [
            "run",
            "configs/distreal_digits.yaml",
            "--set",
            "training.rounds=3",
            "--set",
            f"logging.out_dir={out}",
            "--set",
            "logging.progress=false",
            "--set",
            "logging.wandb.mode=disabled",
        ]
    )
    assert code == 0
    (run_dir,) = out.iterdir()
    records = [json.loads(line) for line in (run_dir / "devices.jsonl").read_text().splitlines()]
    cost = {}
    for r in records:
        if r["samples"]:
            cost.setdefault(r["tier"], []).append(r["trained_flops"] / r["samples"])
    # Weaker devices pick cheaper dropout vectors (fewer FLOPs per sample).
    assert max(cost["strong"]) > min(cost["weak"])
    assert sum(cost["weak"]) / len(cost["weak"]) < sum(cost["strong"]) / len(cost["strong"])


@pytest.mark.parametrize("mode", ["grouped", "attributed"])
def test_taskwise_harvest_through_ray(local_ray, tmp_path, mode):
    out = tmp_path / mode
    code = main(
        [
            "run",
            "configs/taskwise_digits.yaml",
            "--set",
            "training.rounds=3",
            "--set",
            f"strategy.mode={mode}",
            "--set",
            "strategy.warmup_rounds=1",
            "--set",
            f"logging.out_dir={out}",
            "--set",
            "logging.progress=false",
            "--set",
            "logging.wandb.mode=disabled",
        ]
    )
    assert code == 0
    (run_dir,) = out.iterdir()
    records = [json.loads(line) for line in (run_dir / "devices.jsonl").read_text().splitlines()]
    after_warmup = [r for r in records if r["round"] >= (1 if mode == "attributed" else 0)]
    assert after_warmup and all(r["saving"] > 1.5 and r["samples"] > 0 for r in after_warmup)
    # The harvested model equals the same rounds run in one process, without Ray.
    from safetensors.numpy import load_file

    server = run_without_ray(load_config(run_dir / "config.yaml"))
    saved = load_file(run_dir / "model.safetensors")
    expected = server.layout.split(server.weights)
    for name, tensor in expected.items():
        np.testing.assert_allclose(saved[name], tensor.numpy(), atol=1e-5)
