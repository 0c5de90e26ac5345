"""Does a sub-model with half the FLOPs train in about half the time? VGG-11 on CIFAR shapes.

For several uniform rates, measures the training FLOPs per sample of the nested sub-model and
the wall time of one local-training step as a device worker does it (gather the sub-model out of
the global weights, SGD steps on batches of 32 synthetic 3x32x32 images, scatter the update
back), on one thread like a worker. Prints a Markdown table and writes its rows as JSON to
--out; the target is a time ratio of at most 0.6 at a FLOPs ratio of 0.5.

    python benchmarks/slicing.py [--steps 6] [--threads 1] [--out FILE] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.models import build_model
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.models.flops import measure_flops_per_sample
from edgeweave.platform.train.aggregate import Partial
from edgeweave.platform.train.plans import nested, uniform_plan
from edgeweave.platform.train.sgd import SGDSettings
from edgeweave.platform.train.submodel import Slicer
from edgeweave.platform.train.training import train_local


def half_flops_rate(slicer: Slicer, shape, classes: int, full: int) -> float:
    """The rate whose sub-model has half the full model's FLOPs (bisection)."""
    lo, hi = 0.3, 1.0
    for _ in range(12):
        mid = (lo + hi) / 2
        f = measure_flops_per_sample(
            slicer.build(uniform_plan(slicer, lambda i, w, mid=mid: nested(w, mid))), shape, classes
        )
        lo, hi = (mid, hi) if f < full / 2 else (lo, mid)
    return round((lo + hi) / 2, 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vgg11")
    p.add_argument("--steps", type=int, default=6, help="SGD steps per timed local round")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("runs/bench-slicing.json"))
    p.add_argument("--smoke-test", action="store_true", help="a quarter-width model, one step, one repeat")
    args = p.parse_args()
    if args.smoke_test:
        args.steps, args.repeats = 1, 1
    torch.set_num_threads(args.threads)
    cfg = build_config(
        {
            "data": {"name": "synthetic", "train_samples": 32 * args.steps, "test_samples": 10},
            "model": {"name": args.model, "width": 0.25 if args.smoke_test else 1.0},
        }
    )
    data = load_dataset(cfg.data, 0)
    shape = data.input_shape
    model = build_model(cfg.model, shape, data.num_classes, 0)
    slicer, layout = Slicer(model, shape), FlatLayout(model)
    weights = layout.flatten(model)
    full = measure_flops_per_sample(model, shape, data.num_classes)
    rates = sorted({1.0, 0.75, half_flops_rate(slicer, shape, data.num_classes, full), 0.5, 0.25}, reverse=True)
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    s = SGDSettings(lr=0.01, momentum=0.9, batch_size=32, steps=args.steps)
    rows = []
    for r in rates:
        plan = uniform_plan(slicer, lambda i, w, r=r: nested(w, r))
        sub = slicer.build(plan)
        sub_layout = FlatLayout(sub)
        flops = measure_flops_per_sample(sub, shape, data.num_classes)
        times = []
        for k in range(args.repeats + 1):
            t0 = time.perf_counter()
            pos = slicer.positions(plan)
            sub_layout.load(sub, weights[pos])
            train_local(sub, x, y, s, torch.Generator().manual_seed(k))
            Partial.zeros(layout.size).add(sub_layout.flatten(sub), 1.0, mask=pos)
            times.append(time.perf_counter() - t0)
        rows.append((r, flops, statistics.median(times[1:])))
        print(f"rate {r}: {flops / full:.3f} of the FLOPs, {rows[-1][2]:.3f} s", flush=True)
    base = rows[0][2]
    print(f"\n{args.model}, batch 32, {args.steps} steps per local round, {args.threads} thread(s)\n")
    print("| rate | FLOPs per sample | FLOPs ratio | time per local round | time ratio |")
    print("|---:|---:|---:|---:|---:|")
    for r, f, t in rows:
        print(f"| {r:g} | {f / 1e6:.1f} M | {f / full:.3f} | {t:.3f} s | {t / base:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            [
                {"rate": r, "flops_per_sample": f, "flops_ratio": f / full, "seconds": t, "time_ratio": t / base}
                for r, f, t in rows
            ],
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
