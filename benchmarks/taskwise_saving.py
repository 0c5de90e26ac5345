"""Task-wise decoupling against central training: accuracy gap and per-device compute saving.

For each data set (digits, and CIFAR-shaped synthetic images) it runs the config under
`central` (the accuracy reference: one model trained on the union of the devices' data, with
the batch size and epochs that suit central training), then
under `taskwise` with 10 single-class tasks and 1, 2, 3 tasks per device (about 10x, 5x and
3.5x less compute per device), and writes a table: the assembled model's accuracy, its gap to
central, and each device's saving over the run (the FLOPs the full model would have taken for
the same samples, over the FLOPs it trained), and the largest saving found at most 1 point
below central. All runs share one Ray (a local one, or the cluster RAY_ADDRESS names).

    python benchmarks/taskwise_saving.py [--only digits] [--out DIR] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import ray

from edgeweave.cli import main as edgeweave
from edgeweave.platform.config.schema import load_config
from edgeweave.platform.report.report import read_run, summarise

CASES = {  # data set -> (config, central's overrides, [(label, task-wise overrides)])
    "digits": (
        "configs/taskwise_digits.yaml",
        ["training.rounds=15", "training.batch_size=32"],
        [
            ("iid, 1 task", ["strategy.tasks_per_device=1"]),
            ("iid, 2 tasks", []),
            ("iid, 3 tasks", ["strategy.tasks_per_device=3"]),
            ("dirichlet 0.5, 2 tasks", ["partition={policy: dirichlet, alpha: 0.5, min_samples: 10}"]),
        ],
    ),
    "synthetic": (
        "configs/taskwise_synthetic.yaml",
        ["training.rounds=10"],
        [
            ("iid, 1 task", ["strategy.tasks_per_device=1"]),
            ("iid, 2 tasks", []),
            ("iid, 3 tasks", ["strategy.tasks_per_device=3"]),
        ],
    ),
}


# --smoke-test: every run's config is checked; central and one task-wise case of the first data set
# train 2 rounds (the smoke matrix runs every task-wise config; a short run's time is mostly start-up).
SMOKE_CASE = "iid, 2 tasks"
SMOKE = ["training.rounds=2", "ray.num_workers=1"]


def run(config: str, out: Path, sets: list[str]) -> Path:
    """One `edgeweave run` into `out`, in this process and on its Ray; a finished run already there
    is reused (the benchmark resumes)."""
    done = [d for d in sorted(out.glob("*")) if (d / "model.safetensors").is_file()] if out.is_dir() else []
    if done:
        return done[-1]
    argv = ["run", config]
    for s in [f"logging.out_dir={out}", "logging.progress=false", "logging.wandb.mode=disabled", *sets]:
        argv += ["--set", s]
    code = edgeweave(argv)
    if code:
        raise SystemExit(f"edgeweave run {config} exited with {code}")
    return sorted(out.iterdir())[-1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=sorted(CASES), help="one data set")
    p.add_argument("--out", type=Path, default=Path("runs/taskwise-" + time.strftime("%Y%m%d-%H%M%S")))
    p.add_argument(
        "--smoke-test",
        action="store_true",
        help="check every run's config, train central and one task-wise case of one data set 2 rounds",
    )
    args = p.parse_args()
    short = SMOKE if args.smoke_test else []
    plan = []  # (data set, label, config, overrides); label None: the central reference
    for name, (config, central, cases) in CASES.items():
        if not args.only or name == args.only:
            plan.append((name, None, config, ["strategy={name: central}", *central, *short]))
            plan += [(name, label, config, [*sets, *short]) for label, sets in cases]
    for _, _, config, sets in plan:
        load_config(config, sets)  # a bad override fails here, before anything runs
    if args.smoke_test:
        plan = [step for step in plan if step[1] in (None, SMOKE_CASE) and step[0] == plan[0][0]]
    rows, ref = [], {}
    ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        for name, label, config, sets in plan:
            print(f"== {name}: " + (f"taskwise, {label}" if label else "central"), flush=True)
            where = args.out / name / (label.replace(", ", "-").replace(" ", "") if label else "central")
            if label is None:
                ref[name] = summarise(read_run(run(config, where, sets)), 1.0)
                continue
            s = summarise(read_run(run(config, where, sets)), 1.0, ref[name]["final_accuracy"])
            rows.append(
                {
                    "data": name,
                    "case": label,
                    "rounds": s["rounds"],
                    "accuracy": s["final_accuracy"],
                    "central": ref[name]["final_accuracy"],
                    "gap": s["vs_reference"],
                    "min_saving": s["min_saving"],
                    "mean_saving": s["mean_saving"],
                }
            )
    finally:
        ray.shutdown()
    lines = [
        "| data | task-wise run | rounds | accuracy | central | gap | device saving (min / mean) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['data']} | {r['case']} | {r['rounds']} | {r['accuracy']:.4f} | {r['central']:.4f} | "
        f"{100 * r['gap']:+.1f} pt | {r['min_saving']:.2f}x / {r['mean_saving']:.2f}x |"
        for r in rows
    ]
    for name in dict.fromkeys(r["data"] for r in rows):
        within = [r for r in rows if r["data"] == name and r["gap"] >= -0.01]
        best = max(within, key=lambda r: r["min_saving"], default=None)
        lines.append("")
        lines.append(
            f"{name}: largest saving at most 1 point below central: "
            + (f"{best['min_saving']:.2f}x ({best['case']}, {100 * best['gap']:+.1f} pt)" if best else "none")
        )
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "table.json").write_text(json.dumps(rows, indent=1))
    print(table)
    print(f"\ntable -> {args.out / 'table.md'}")


if __name__ == "__main__":
    main()
