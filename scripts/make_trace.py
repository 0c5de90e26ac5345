"""Write an example device trace for the `trace` resource model.

Each device alternates between on and off periods of random length (exponential, mean
`--on-mean` and `--off-mean` seconds) and, while on, changes speed multiplier at random
among 1.0, 0.7 and 0.4. Output: CSV with the header device,time,available,speed.

    python scripts/make_trace.py --devices 20 --hours 6 --out configs/traces/example.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=20)
    p.add_argument("--hours", type=float, default=6.0)
    p.add_argument("--on-mean", type=float, default=1800.0)
    p.add_argument("--off-mean", type=float, default=600.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("configs/traces/example.csv"))
    args = p.parse_args()

    g = np.random.default_rng(args.seed)
    end = args.hours * 3600
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["device", "time", "available", "speed"])
        for d in range(args.devices):
            t, on = 0.0, bool(g.random() < args.on_mean / (args.on_mean + args.off_mean))
            while round(t, 1) < end:  # a trace's times lie in [0, cycle): a row at `end` would be outside it
                w.writerow([d, round(t, 1), int(on), float(g.choice([1.0, 0.7, 0.4])) if on else 1.0])
                t += g.exponential(args.on_mean if on else args.off_mean)
                on = not on
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
