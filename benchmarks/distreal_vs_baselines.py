"""DISTREAL against the baselines on identical devices: digits, three tiers, markov traces.

Every run starts from configs/distreal_digits.yaml (same seed, tiers, availability and 12 s
deadline) and changes only the strategy (and, for fedavg, the straggler policy). Then
`edgeweave report` draws accuracy against virtual time and writes the table. All runs share
one Ray (a local one, or the cluster RAY_ADDRESS names).

    python benchmarks/distreal_vs_baselines.py [--rounds 60] [--target 0.85] [--out DIR] [--smoke-test]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import ray

from edgeweave.cli import main as edgeweave
from edgeweave.platform.config.schema import load_config

BASE = "configs/distreal_digits.yaml"
TIERS = "rates: {strong: 1.0, medium: 0.5, weak: 0.25}"
# Each entry replaces the whole strategy section (and, for fedavg, sets the straggler policy).
RUNS = {
    "fedavg-wait": ["strategy={name: fedavg}", "devices.stragglers=wait", "devices.round_ends=last_finish"],
    "fedavg-drop": ["strategy={name: fedavg}", "devices.stragglers=drop"],
    "fedavg-partial": ["strategy={name: fedavg}", "devices.stragglers=partial"],
    "fd-uniform": ["strategy={name: fd, rates: {strong: 0.5, medium: 0.5, weak: 0.5}}"],
    "heterofl": [f"strategy={{name: heterofl, {TIERS}}}"],
    "fjord": [f"strategy={{name: fjord, {TIERS}}}"],
    "fedrolex": [f"strategy={{name: fedrolex, {TIERS}}}"],
    "distreal": [],
}
# --smoke-test: every run's config is checked, two of them train 2 rounds on a few devices
# (each run starts its own device workers, which is most of a short run's time).
SMOKE_RUNS = ("fedavg-partial", "distreal")  # the width baselines run in the smoke matrix
SMOKE = ["devices.count=12", "devices.per_round=4", "ray.num_workers=1"]


def run(*argv: str) -> None:
    """One `edgeweave` command, in this process and on its Ray; a failure stops the benchmark."""
    code = edgeweave(list(argv))
    if code:
        raise SystemExit(f"edgeweave {argv[0]} exited with {code}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--target", type=float, default=0.85)
    p.add_argument("--out", type=Path, default=Path("runs/compare-" + time.strftime("%Y%m%d-%H%M%S")))
    p.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        metavar="SECTION.KEY=VALUE",
        help="applied to every run, e.g. devices.round_ends=deadline",
    )
    p.add_argument(
        "--smoke-test", action="store_true", help="check every run's config, train two of them 2 rounds on 12 devices"
    )
    args = p.parse_args()
    rounds = 2 if args.smoke_test else args.rounds
    runs = {}
    for name, sets in RUNS.items():
        sets = [
            f"name={name}",
            f"training.rounds={rounds}",
            f"logging.out_dir={args.out / name}",
            "logging.progress=false",
            "logging.wandb.mode=disabled",
            *(SMOKE if args.smoke_test else []),
            *args.sets,
            *sets,
        ]
        load_config(BASE, sets)  # a bad override fails here, before anything runs
        if name in SMOKE_RUNS or not args.smoke_test:
            runs[name] = sets
    dirs = []
    ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        for name, sets in runs.items():
            print(f"== {name}", flush=True)
            run("run", BASE, *(a for s in sets for a in ("--set", s)))
            dirs.append(str(next((args.out / name).iterdir())))
    finally:
        ray.shutdown()
    run("report", *dirs, "--target", str(args.target), "--out", str(args.out / "report.png"))


if __name__ == "__main__":
    main()
