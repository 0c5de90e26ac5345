"""DISTREAL against the baselines on identical devices: digits, three tiers, markov traces.

Every run starts from configs/distreal_digits.yaml (same seed, tiers, availability and 12 s
deadline) and changes only the strategy (and, for fedavg, the straggler policy). Then
`edgeweave report` draws accuracy against virtual time and writes the table.

    python benchmarks/distreal_vs_baselines.py [--rounds 60] [--target 0.85] [--smoke-test]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BASE = "configs/distreal_digits.yaml"
TIERS = "rates: {strong: 1.0, medium: 0.5, weak: 0.25}"
# Each entry replaces the whole strategy section (and, for fedavg, sets the straggler policy).
RUNS = {
    "fedavg-wait": ["strategy={name: fedavg}", "devices.stragglers=wait"],
    "fedavg-drop": ["strategy={name: fedavg}", "devices.stragglers=drop"],
    "fedavg-partial": ["strategy={name: fedavg}", "devices.stragglers=partial"],
    "fd-uniform": ["strategy={name: fd, rates: {strong: 0.5, medium: 0.5, weak: 0.5}}"],
    "heterofl": [f"strategy={{name: heterofl, {TIERS}}}"],
    "fjord": [f"strategy={{name: fjord, {TIERS}}}"],
    "fedrolex": [f"strategy={{name: fedrolex, {TIERS}}}"],
    "distreal": [],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--target", type=float, default=0.85)
    p.add_argument("--out", type=Path, default=Path("runs/compare-" + time.strftime("%Y%m%d-%H%M%S")))
    p.add_argument("--set", action="append", default=[], dest="sets", metavar="SECTION.KEY=VALUE",
                   help="applied to every run, e.g. devices.round_ends=deadline")
    p.add_argument("--smoke-test", action="store_true", help="2 rounds each")
    args = p.parse_args()
    rounds = 2 if args.smoke_test else args.rounds
    dirs = []
    for name, sets in RUNS.items():
        out = args.out / name
        cmd = [sys.executable, "-m", "edgeweave.cli", "run", BASE, "--set", f"name={name}",
               "--set", f"training.rounds={rounds}", "--set", f"logging.out_dir={out}",
               "--set", "logging.progress=false", "--set", "logging.wandb.mode=disabled"]
        for s in [*args.sets, *sets]:
            cmd += ["--set", s]
        print(f"== {name}", flush=True)
        subprocess.run(cmd, check=True)
        dirs.append(str(next(out.iterdir())))
    subprocess.run([sys.executable, "-m", "edgeweave.cli", "report", *dirs, "--target", str(args.target),
                    "--out", str(args.out / "report.png")], check=True)


if __name__ == "__main__":
    main()
