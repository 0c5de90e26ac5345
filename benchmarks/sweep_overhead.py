"""What a sweep costs beyond its trials' rounds: 8 trials of 5 rounds on the quickstart, one command.

Runs `edgeweave sweep` on a grid of 2 x 2 x 2 over the quickstart (learning rate, momentum,
Dirichlet alpha; 5 rounds each, FIFO) as a new process, times it from start to exit, and reads
each trial's `timeline.json`: the trial's own time outside its rounds (setting up its run, its
simulation's driver and workers, the figures, shutting down) and its rounds. The overhead per
trial is the whole command less the rounds, over the trials. Also counts the console's lines
and its tracebacks (there should be none on a sweep that did not fail).

    python benchmarks/sweep_overhead.py [--wandb offline|disabled] [--out DIR] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

SWEEP = {
    "name": "overhead",
    "base": str(Path(__file__).resolve().parents[1] / "configs/quickstart.yaml"),
    "set": {"training.rounds": 5},
    "space": {
        "training.lr": {"grid": [0.02, 0.05]},
        "training.momentum": {"grid": [0.0, 0.9]},
        "partition.alpha": {"grid": [0.5, 1.0]},
    },
    "scheduler": {"name": "fifo"},
    "checkpoint_every": 5,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=f"runs/sweep-overhead-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument(
        "--wandb",
        choices=("offline", "disabled"),
        default="offline",
        help="W&B mode of the trials (offline: one W&B run per trial, as the quickstart's sweeps do)",
    )
    parser.add_argument("--smoke-test", action="store_true", help="2 trials of 2 rounds, no W&B: a quick look")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True)
    sweep = {**SWEEP, "set": {**SWEEP["set"], "logging.wandb.mode": args.wandb}, "out_dir": str(out / "sweeps")}
    if args.smoke_test:
        sweep.update(
            set={"training.rounds": 2, "logging.wandb.mode": "disabled"}, space={"training.lr": {"grid": [0.02, 0.05]}}
        )
    (out / "sweep.yaml").write_text(yaml.safe_dump(sweep, sort_keys=False))
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("edgeweave")), "sweep", str(out / "sweep.yaml")],
        capture_output=True,
        text=True,
    )
    whole = time.perf_counter() - t0
    (out / "console.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        sys.exit(f"the sweep failed ({done.returncode}); its console is in {out / 'console.txt'}")
    timelines = [json.loads(p.read_text()) for p in sorted((out / "sweeps").glob("*/runs/*/timeline.json"))]
    rounds = [sum(s["seconds"] for s in t["phases"] if s["phase"] in ("first round", "rounds")) for t in timelines]
    own = [t["whole_seconds"] - r for t, r in zip(timelines, rounds)]
    console = (done.stdout + done.stderr).splitlines()
    rows = {
        "trials": len(timelines),
        "whole command (s)": whole,
        "trials' rounds (s)": sum(rounds),
        "overhead per trial (s)": (whole - sum(rounds)) / max(1, len(timelines)),
        "of it inside a trial, outside its rounds (s, mean)": sum(own) / max(1, len(own)),
        "console lines": len(console),
        "tracebacks on the console": sum("Traceback" in line for line in console),
    }
    md = "| figure | value |\n|---|---:|\n" + "\n".join(
        f"| {k} | {v:.2f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in rows.items()
    )
    (out / "sweep_overhead.md").write_text(md + "\n")
    (out / "sweep_overhead.json").write_text(
        json.dumps({**rows, "per_trial_own_s": own, "per_trial_rounds_s": rounds}, indent=1)
    )
    print(md)
    print(f"\n-> {out / 'sweep_overhead.md'}")


if __name__ == "__main__":
    main()
