r"""edgeweave against Flower's simulation engine on the same federated workload, one after the other.

The workload is `edgeweave bench`'s (edgeweave.platform.bench.rounds.workload): 1,000 devices of 50
CIFAR-shaped synthetic samples, 10 devices a round, one local epoch at batch 10, SGD lr 0.1, the
two-conv CNN, 2,000 test images evaluated every 10 rounds, 30 rounds, 2 workers. edgeweave runs it
as `edgeweave run` with ray.num_workers=2; Flower runs benchmarks/flower_app/fedavg_app.py, which
does the same work: the same data, initial weights, devices per round (edgeweave's sampler, written
to sequence.json here), mini-batches and FedAvg, with 2 clients of one CPU and one thread at a time.
Each system's time is the wall time of its whole command, start-up included; both should end with
the same weights up to float rounding, so with the same accuracy. The target: edgeweave at least
1.8x faster, the same final accuracy within noise.

Flower and the Ray it pins live in their own virtualenv, .venv-flower (edgeweave installed there
without its dependencies, for edgeweave.platform's pure-PyTorch parts); from the repository root:

    python3 -m venv .venv-flower && .venv-flower/bin/pip install 'flwr[simulation]' torch pydantic pyyaml \
        && .venv-flower/bin/pip install --no-deps -e .

    python benchmarks/vs_flower.py [--rounds 30] [--out DIR] [--smoke-test] [--flower-python PATH]

writes vs_flower.json and vs_flower.md (and each command's log) into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import deque
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

if TYPE_CHECKING:
    from edgeweave.platform.config.schema import ExperimentConfig

ROOT = Path(__file__).resolve().parents[1]
FLOWER_APP = ROOT / "benchmarks" / "flower_app" / "fedavg_app.py"
INSTALL = (
    "python3 -m venv .venv-flower && .venv-flower/bin/pip install 'flwr[simulation]' torch pydantic pyyaml "
    "&& .venv-flower/bin/pip install --no-deps -e ."
)
WORKERS = 2
TARGET_SPEEDUP = 1.8
ACCURACY_TOLERANCE = 0.01  # 20 of the 2,000 test images
LOG_TAIL = 40  # lines of a failed command's log to print


class CommandFailed(Exception):
    """A timed command failed or left no result; the message ends with its log's last lines."""


def flower_ready(python: Path) -> bool:
    """Whether `python` exists and imports both Flower and edgeweave.platform."""
    return (
        python.is_file()
        and subprocess.run([str(python), "-c", "import flwr, edgeweave.platform"], capture_output=True).returncode == 0
    )


def smoke_workload() -> ExperimentConfig:
    """A tiny version of the workload: 100 devices of 50 samples, 500 test images, 3 rounds, evaluated each."""
    from edgeweave.platform.bench.rounds import SAMPLES_PER_DEVICE, workload

    return workload(population=100, rounds=3, eval_every=1, samples=100 * SAMPLES_PER_DEVICE, test_samples=500)


def devices_per_round(cfg: ExperimentConfig) -> list[list[int]]:
    """The device ids edgeweave's sampler trains in each round (the data made here only for that, then dropped)."""
    from edgeweave.platform.bench.rounds import device_sequence
    from edgeweave.platform.data import load_dataset
    from edgeweave.platform.partition import partition_data

    data = load_dataset(cfg.data, cfg.seed)
    partition = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed, data.owners)
    return [[int(d) for d in devices] for devices in device_sequence(cfg, data, partition)]


def child_env() -> dict[str, str]:
    """The commands' environment: each starts its own local Ray (no RAY_ADDRESS) and reports nothing out."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_USAGE_STATS_ENABLED="0", FLWR_TELEMETRY_ENABLED="0")
    return env


def timed(name: str, command: Sequence[str], log: Path) -> float:
    """Run `command` from the repository root, its output into `log`; return its wall seconds."""
    print(f"{name}: {' '.join(command)}\n  log: {log}", flush=True)
    with open(log, "w") as f:
        t0 = time.perf_counter()
        rc = subprocess.run(command, cwd=ROOT, env=child_env(), stdout=f, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - t0
    if rc != 0:
        raise CommandFailed(f"{name} exited {rc} after {wall:.1f} s" + log_tail(log))
    print(f"{name}: {wall:.1f} s", flush=True)
    return wall


def log_tail(log: Path) -> str:
    """The log's last LOG_TAIL lines, to end an error message with."""
    with open(log, errors="replace") as f:
        return f"; the last lines of {log}:\n" + "".join(deque(f, LOG_TAIL))


def edgeweave_command() -> list[str]:
    """The `edgeweave` command of this interpreter's environment."""
    script = Path(sys.executable).with_name("edgeweave")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "edgeweave.cli"]


def edgeweave_result(out_dir: Path, log: Path) -> tuple[float, Path]:
    """The run's last evaluated accuracy (its metrics.jsonl) and the path of its final weights."""
    runs = [d for d in out_dir.iterdir() if (d / "metrics.jsonl").is_file()] if out_dir.is_dir() else []
    if len(runs) != 1:
        raise CommandFailed(f"edgeweave left {len(runs)} run directories with metrics in {out_dir}" + log_tail(log))
    metrics = [json.loads(line) for line in (runs[0] / "metrics.jsonl").read_text().splitlines()]
    evaluated = [m["test_accuracy"] for m in metrics if m.get("test_accuracy") is not None]
    if not evaluated:
        raise CommandFailed(f"edgeweave logged no test accuracy in {runs[0] / 'metrics.jsonl'}" + log_tail(log))
    return evaluated[-1], runs[0] / "model.safetensors"


def flower_result(out_dir: Path, log: Path) -> dict[str, Any]:
    """What the Flower app wrote: the last evaluated accuracy, each evaluated round's, the versions it ran."""
    path = out_dir / "result.json"
    if not path.is_file():
        raise CommandFailed(f"Flower exited 0 but wrote no {path}" + log_tail(log))
    return json.loads(path.read_text())


def weight_difference(safetensors_path: Path, npz_path: Path) -> float:
    """The largest absolute difference between the two systems' final weights."""
    import numpy as np
    from safetensors.numpy import load_file

    ours, theirs = load_file(str(safetensors_path)), np.load(npz_path)
    return max(float(np.abs(ours[k] - theirs[k]).max()) for k in ours)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The Markdown table: each system's wall, final accuracy, and edgeweave's speed-up over Flower."""
    lines = [
        "| system | wall of the whole command (s) | final test accuracy | edgeweave's speed-up |",
        "|---|---:|---:|---:|",
    ]
    for r in rows:
        speedup = "-" if r["speedup"] is None else f"{r['speedup']:.2f}x"
        lines.append(f"| {r['system']} | {r['wall_s']:.1f} | {r['accuracy']:.4f} | {speedup} |")
    return "\n".join(lines)


def verdict(speedup: float, accuracy_diff: float) -> list[str]:
    """The target, met or missed: edgeweave at least TARGET_SPEEDUP times faster, the same accuracy within noise."""
    fast, same = speedup >= TARGET_SPEEDUP, accuracy_diff <= ACCURACY_TOLERANCE
    return [
        f"speed-up {speedup:.2f}x: {'met' if fast else 'missed'} (at least {TARGET_SPEEDUP}x)",
        f"final accuracy difference {accuracy_diff:.4f}: {'met' if same else 'missed'} (at most {ACCURACY_TOLERANCE})",
        f"target (edgeweave at least {TARGET_SPEEDUP}x faster, same final accuracy within noise): "
        f"{'met' if fast and same else 'missed'}",
    ]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=30, help="rounds of the workload (default 30; the smoke test runs 3)")
    p.add_argument(
        "--out", help="directory for vs_flower.json, vs_flower.md and the logs (default runs/vs-flower-<time>)"
    )
    p.add_argument(
        "--smoke-test",
        action="store_true",
        help="a tiny workload (100 devices, 3 rounds, evaluated each) to check both sides end to end",
    )
    p.add_argument(
        "--flower-python",
        default=str(ROOT / ".venv-flower" / "bin" / "python"),
        help="the Python of Flower's virtualenv (default .venv-flower/bin/python)",
    )
    args = p.parse_args(argv)
    flower_python = Path(args.flower_python).absolute()  # not resolved: a venv's python is a symlink
    if not flower_ready(flower_python):
        print(
            f"Flower's virtualenv is missing or incomplete ({flower_python} must import flwr and "
            f"edgeweave.platform). Install it from the repository root:\n\n    {INSTALL}\n",
            file=sys.stderr,
        )
        return 2

    from edgeweave.platform.bench.rounds import workload
    from edgeweave.platform.config.schema import dump_config

    cfg = smoke_workload() if args.smoke_test else workload(rounds=args.rounds)
    out = Path(args.out or f"runs/vs-flower-{time.strftime('%Y%m%d-%H%M%S')}").absolute()
    out.mkdir(parents=True, exist_ok=True)
    config, sequence = out / "workload.yaml", out / "sequence.json"
    config.write_text(dump_config(cfg))
    sequence.write_text(json.dumps(devices_per_round(cfg)))
    try:
        ew_wall = timed(
            "edgeweave",
            [
                *edgeweave_command(),
                "run",
                str(config),
                "--set",
                f"ray.num_workers={WORKERS}",
                "--set",
                f"logging.out_dir={out / 'edgeweave'}",
            ],
            out / "edgeweave.log",
        )
        ew_accuracy, ew_weights = edgeweave_result(out / "edgeweave", out / "edgeweave.log")
        fl_wall = timed(
            "Flower",
            [
                str(flower_python),
                str(FLOWER_APP),
                str(config),
                str(sequence),
                str(out / "flower"),
                "--workers",
                str(WORKERS),
            ],
            out / "flower.log",
        )
        flower = flower_result(out / "flower", out / "flower.log")
    except CommandFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    speedup, accuracy_diff = fl_wall / ew_wall, abs(ew_accuracy - flower["accuracy"])
    versions = {"edgeweave": version("edgeweave"), "ray": version("ray"), "torch": version("torch")}
    rows = [
        {
            "system": f"edgeweave {versions['edgeweave']} (Ray {versions['ray']})",
            "wall_s": ew_wall,
            "accuracy": ew_accuracy,
            "speedup": speedup,
            "log": "edgeweave.log",
        },
        {
            "system": f"Flower {flower['versions']['flwr']} (Ray {flower['versions']['ray']})",
            "wall_s": fl_wall,
            "accuracy": flower["accuracy"],
            "speedup": None,
            "log": "flower.log",
        },
    ]
    lines = verdict(speedup, accuracy_diff)
    weights = weight_difference(ew_weights, out / "flower" / "weights.npz")
    workload_line = (
        f"{cfg.devices.count:,} devices, {cfg.devices.per_round} per round, {cfg.training.rounds} "
        f"rounds, {WORKERS} workers{' (smoke test)' if args.smoke_test else ''}; "
        f"largest final weight difference {weights:.2e}"
    )
    md = "\n".join([table(rows), "", workload_line, "", *lines])
    (out / "vs_flower.md").write_text(md + "\n")
    (out / "vs_flower.json").write_text(
        json.dumps(
            {
                "smoke_test": args.smoke_test,
                "workload": cfg.to_dict(),
                "workers": WORKERS,
                "rows": rows,
                "speedup": speedup,
                "accuracy_diff": accuracy_diff,
                "max_weight_diff": weights,
                "flower_accuracies": flower["accuracies"],
                "versions": {"edgeweave_side": versions, "flower_side": flower["versions"]},
                "target": {
                    "speedup": TARGET_SPEEDUP,
                    "accuracy_tolerance": ACCURACY_TOLERANCE,
                    "met": speedup >= TARGET_SPEEDUP and accuracy_diff <= ACCURACY_TOLERANCE,
                },
            },
            indent=1,
        )
    )
    print("\n" + md)
    print(f"\nvs_flower -> {out / 'vs_flower.md'}, {out / 'vs_flower.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
