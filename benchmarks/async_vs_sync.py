"""Synchronous rounds against buffered asynchronous steps (FedBuff), FedAvg and DISTREAL, on the same devices.

Every run starts from configs/distreal_digits.yaml (digits, 30 devices in three tiers on markov
traces, a 12 s deadline with `partial` stragglers) and changes the strategy and the aggregation.
Sync runs fold the 10 devices of each round; async runs keep 10 devices training and fold every
5 arrivals, so twice as many steps fold the same number of updates. Each pair runs for 3 seeds
(so 3 sets of traces); the table gives the virtual time to two target accuracies and the final
accuracy, as mean and range over the seeds, and `edgeweave report` draws the seed-0 runs.

    python benchmarks/async_vs_sync.py [--rounds 60] [--targets 0.85 0.9] [--seeds 3] [--out DIR] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import ray

from edgeweave.cli import main as edgeweave
from edgeweave.platform.config.schema import load_config

BASE = "configs/distreal_digits.yaml"
ASYNC = "aggregation={mode: async, buffer: 5, concurrency: 10}"
RUNS = {  # name -> (overrides, async)
    "fedavg-sync": (["strategy={name: fedavg}"], False),
    "fedavg-async": (["strategy={name: fedavg}", ASYNC], True),
    "distreal-sync": ([], False),
    "distreal-async": ([ASYNC], True),
}
# --smoke-test: every run's config is checked, two of them (one sync, one async) train on a few devices.
SMOKE_RUNS = ("fedavg-sync", "distreal-async")
SMOKE = ["devices.count=12", "devices.per_round=4", "ray.num_workers=1", "training.local_steps=2"]


def run(*argv: str) -> None:
    """One `edgeweave` command, in this process and on its Ray; a failure stops the benchmark."""
    code = edgeweave(list(argv))
    if code:
        raise SystemExit(f"edgeweave {argv[0]} exited with {code}")


def time_to(metrics: list[dict[str, Any]], target: float) -> Optional[float]:
    """Virtual seconds until the test accuracy first reaches `target` (None: never)."""
    return next(
        (m["virtual_time"] for m in metrics if m.get("test_accuracy") is not None and m["test_accuracy"] >= target),
        None,
    )


def cell(values: list[Optional[float]], fmt: str) -> str:
    """Mean and range over the seeds; how many seeds never got there."""
    got = [v for v in values if v is not None]
    if not got:
        return "never"
    text = f"{np.mean(got):{fmt}} ({min(got):{fmt}}-{max(got):{fmt}})" if len(got) > 1 else f"{got[0]:{fmt}}"
    return text + (f", {len(values) - len(got)} never" if len(got) < len(values) else "")


def table(results: dict[str, list[list[dict[str, Any]]]], targets: list[float]) -> str:
    head = [
        "run",
        *(f"virtual time to {t:g} (s)" for t in targets),
        "final accuracy",
        "virtual time (s)",
        "mean staleness",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, seeds in results.items():
        stale = [
            np.mean([m["staleness_mean"] for m in ms if m.get("staleness_mean") is not None] or [0.0]) for ms in seeds
        ]
        lines.append(
            "| "
            + " | ".join(
                [
                    name,
                    *(cell([time_to(ms, t) for ms in seeds], ".0f") for t in targets),
                    cell([ms[-1]["test_accuracy"] for ms in seeds], ".3f"),
                    cell([ms[-1]["virtual_time"] for ms in seeds], ".0f"),
                    cell(stale, ".2f") if "async" in name else "-",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=60, help="sync rounds; async runs take twice as many steps")
    p.add_argument("--targets", type=float, nargs="+", default=[0.85, 0.9])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("runs/async-" + time.strftime("%Y%m%d-%H%M%S")))
    p.add_argument(
        "--smoke-test",
        action="store_true",
        help="check every run's config; one sync and one async run, one seed, 2 rounds (4 steps), 12 devices",
    )
    args = p.parse_args()
    rounds, seeds = (2, 1) if args.smoke_test else (args.rounds, args.seeds)
    plan = {}
    for name, (sets, asynchronous) in RUNS.items():
        for seed in range(seeds):
            sets_ = [
                f"name={name}",
                f"seed={seed}",
                f"training.rounds={rounds * (2 if asynchronous else 1)}",
                f"logging.out_dir={args.out / name / str(seed)}",
                "logging.progress=false",
                "logging.wandb.mode=disabled",
                *(SMOKE if args.smoke_test else []),
                *sets,
            ]
            load_config(BASE, sets_)  # a bad override fails here, before anything runs
            if name in SMOKE_RUNS or not args.smoke_test:
                plan[(name, seed)] = sets_
    results: dict[str, list[list[dict[str, Any]]]] = {name: [] for name, _ in plan}
    dirs = []
    ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        for (name, seed), sets in plan.items():
            print(f"== {name}, seed {seed}", flush=True)
            run("run", BASE, *(a for s in sets for a in ("--set", s)))
            run_dir = next((args.out / name / str(seed)).iterdir())
            results[name].append([json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()])
            if seed == 0:
                dirs.append(str(run_dir))
    finally:
        ray.shutdown()
    run("report", *dirs, "--target", str(args.targets[0]), "--out", str(args.out / "report.png"))
    text = table(results, args.targets)
    (args.out / "async_vs_sync.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
