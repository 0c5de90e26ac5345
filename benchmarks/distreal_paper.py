"""DISTREAL under its paper's conditions, against the baselines and two ablations, over several seeds.

Every run starts from configs/distreal_paper.yaml: VGG-11 (width 0.25) on CIFAR-shaped synthetic
data, 100 devices, 10 per round, 28 mini-batches of local work, speed changing every 0.5 s, and
fixed-length rounds ending at a deadline that most device-rounds cannot meet with their full
work at full width. A seed fixes the data, the model's start and every device's trace, and each
run with that seed sees the same ones. The runs:

- FedAvg with stragglers waited for, dropped, or cut (partial);
- Federated Dropout, HeteroFL and FjORD with `rate_by: budget` (the largest rate whose work fits
  the deadline at the device's speed at the round's start);
- DISTREAL with the searched front; its front restricted to uniform rates (what the per-layer
  search adds); and one vector per round instead of one per mini-batch (what reacting adds);
- DISTREAL with kept filters scaled by 1/(1-d) in training (inverted dropout), with its own front
  searched under the same scaling.

The fronts are searched first (`edgeweave dse`, scored from the weights after the config's
`dse_warm_rounds` FedAvg rounds), unless --front, --uniform-front and --scaled-front name existing ones (or, with --reuse, --out
holds them already). The
table gives, per run, mean and spread over the seeds of the virtual time to two target
accuracies (and in how many seeds it got there) and of the final accuracy; the plot, mean test
accuracy against virtual time.

    python benchmarks/distreal_paper.py [--seeds 3] [--rounds 30] [--targets 0.6 0.7] [--out DIR] [--reuse] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import ray  # noqa: E402

from edgeweave.cli import main as edgeweave  # noqa: E402
from edgeweave.platform.config import load_config  # noqa: E402
from edgeweave.platform.report import read_run  # noqa: E402

BASE = "configs/distreal_paper.yaml"
SHIPPED = {"FRONT": Path("configs/fronts/synthetic_vgg11.json"),  # the fronts searched for the README's table
           "SCALED": Path("configs/fronts/synthetic_vgg11_scaled.json")}
BUDGET = "rate_by: budget, allowed: [1.0, 0.75, 0.5, 0.25]"
RUNS = {  # each entry's overrides; the fronts are filled in once searched
    "fedavg-wait": ["strategy={name: fedavg}", "devices.stragglers=wait", "devices.round_ends=last_finish"],
    "fedavg-drop": ["strategy={name: fedavg}", "devices.stragglers=drop"],
    "fedavg-partial": ["strategy={name: fedavg}"],
    "fd-budget": [f"strategy={{name: fd, rates: {{strong: 1.0, medium: 1.0, weak: 1.0}}, {BUDGET}}}"],
    "heterofl-budget": [f"strategy={{name: heterofl, rates: {{strong: 1.0, medium: 1.0, weak: 1.0}}, {BUDGET}}}"],
    "fjord-budget": [f"strategy={{name: fjord, rates: {{strong: 1.0, medium: 1.0, weak: 1.0}}, {BUDGET}}}"],
    "distreal": ["strategy.front=FRONT"],
    "distreal-uniform-front": ["strategy.front=UNIFORM"],
    "distreal-one-vector-per-round": ["strategy.front=FRONT", "strategy.choose=round"],
    "distreal-scale-kept": ["strategy.front=SCALED", "strategy.scale_kept=true"],
}
# --smoke-test: 2 rounds of one local epoch on 20 devices for two runs, the shipped fronts, one seed.
SMOKE_RUNS = ("fedavg-partial", "distreal-scale-kept")  # plain distreal: configs/distreal_paper.yaml, smoke matrix
SMOKE = ["devices.count=20", "devices.per_round=4", "ray.num_workers=1", "data.train_samples=1000",
         "data.test_samples=200", "training.local_epochs=1"]


def run(*argv: str) -> None:
    """One `edgeweave` command, in this process and on its Ray; a failure stops the benchmark."""
    code = edgeweave(list(argv))
    if code:
        raise SystemExit(f"edgeweave {argv[0]} exited with {code}")


def search(out: Path, sets: Sequence[str]) -> Path:
    """`edgeweave dse` into `out`, with the config changed by `sets`."""
    run("dse", BASE, "--out", str(out), "--force", *(a for s in sets for a in ("--set", s)))
    return out


def fill(override: str, fronts: dict[str, Optional[Path]]) -> str:
    """An override with its front placeholder (FRONT, UNIFORM, SCALED) replaced by the front's path."""
    for key, path in fronts.items():
        override = override.replace(key, str(path))
    return override


def mean_spread(values: Sequence[Optional[float]]) -> str:
    """'mean ± std (k/n)' over the values reached; '-' when none was."""
    got = [v for v in values if v is not None]
    if not got:
        return f"- (0/{len(values)})"
    reached = "" if len(got) == len(values) else f" ({len(got)}/{len(values)})"
    return f"{np.mean(got):.4g} ± {np.std(got):.2g}{reached}"


def time_to(metrics: list[dict[str, Any]], target: float) -> Optional[float]:
    return next((m["virtual_time"] for m in metrics if (m.get("test_accuracy") or 0.0) >= target), None)


def summarise(runs: dict[str, list[list[dict[str, Any]]]], targets: Sequence[float]) -> tuple[str, list[dict]]:
    """The Markdown table (fastest to the first target first) and its rows."""
    rows = []
    for name, seeds in runs.items():
        finals = [[m for m in ms if m.get("test_accuracy") is not None][-1]["test_accuracy"] for ms in seeds]
        times = {t: [time_to(ms, t) for ms in seeds] for t in targets}
        rows.append({"run": name, "final": finals, "times": times,
                     "flops": [ms[-1]["cumulative_flops"] for ms in seeds]})
    first = targets[0]
    rows.sort(key=lambda r: (sum(v is None for v in r["times"][first]),
                             np.mean([v for v in r["times"][first] if v is not None] or [np.inf])))
    head = "| run | " + " | ".join(f"virtual s to {t:g}" for t in targets) + " | final accuracy | total FLOPs |"
    lines = [head, "|---|" + "---:|" * (len(targets) + 2)]
    for r in rows:
        cells = [mean_spread(r["times"][t]) for t in targets]
        lines.append(f"| {r['run']} | " + " | ".join(cells) +
                     f" | {np.mean(r['final']):.4f} ± {np.std(r['final']):.4f} | {np.mean(r['flops']):.3g} |")
    return "\n".join(lines) + "\n", rows


def plot(runs: dict[str, list[list[dict[str, Any]]]], targets: Sequence[float], path: Path) -> None:
    """Mean test accuracy over the seeds against virtual time, one line per run."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, seeds in runs.items():
        n = min(len(ms) for ms in seeds)
        t = np.mean([[m["virtual_time"] for m in ms[:n]] for ms in seeds], axis=0)
        acc = np.mean([[m.get("test_accuracy") or np.nan for m in ms[:n]] for ms in seeds], axis=0)
        style = "-" if name.startswith("distreal") else "--"
        ax.plot(t, acc, style, label=name, linewidth=2.2 if name == "distreal" else 1.2)
    for target in targets:
        ax.axhline(target, color="0.6", linestyle=":", linewidth=1)
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel(f"test accuracy, mean of {len(next(iter(runs.values())))} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--targets", type=float, nargs="+", default=[0.6, 0.7])
    p.add_argument("--front", type=Path, help="an existing front for the config (else searched into --out)")
    p.add_argument("--uniform-front", type=Path, help="an existing uniform-rate front (else searched)")
    p.add_argument("--scaled-front", type=Path, help="an existing front searched with scale_kept (else searched)")
    p.add_argument("--reuse", action="store_true", help="read the runs --out already holds instead of running them")
    p.add_argument("--only", nargs="+", choices=sorted(RUNS), help="run only these")
    p.add_argument("--out", type=Path, default=Path("runs/distreal-paper-" + time.strftime("%Y%m%d-%H%M%S")))
    p.add_argument("--smoke-test", action="store_true", help="2 runs, 2 rounds, 20 devices, the shipped fronts, 1 seed")
    args = p.parse_args()
    seeds, rounds = (1, 2) if args.smoke_test else (args.seeds, args.rounds)
    names = SMOKE_RUNS if args.smoke_test else (args.only or list(RUNS))
    common = ["logging.progress=false", "logging.wandb.mode=disabled", f"training.rounds={rounds}",
              *(SMOKE if args.smoke_test else [])]
    for name in names:  # a bad override fails here, before anything runs (fronts are checked once searched)
        load_config(BASE, [*common, *(s for s in RUNS[name] if "=FRONT" not in s and "=UNIFORM" not in s
                                      and "=SCALED" not in s)], check_strategy=False)
    args.out.mkdir(parents=True, exist_ok=True)
    ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        def front(key: str, given: Optional[Path], file: str, sets: list[str]) -> Optional[Path]:
            """The front a placeholder stands for: given, shipped (smoke test), already in --out (with
            --reuse), or searched; None when no run of this benchmark uses it."""
            if given or (args.smoke_test and key in SHIPPED):
                return given or SHIPPED[key]
            if not any(f"={key}" in s for name in names for s in RUNS[name]):
                return None
            out = args.out / file
            return out if args.reuse and out.is_file() else search(out, [*common, *sets])

        fronts = {"UNIFORM": front("UNIFORM", args.uniform_front, "front_uniform.json", ["strategy.uniform_only=true"]),
                  "SCALED": front("SCALED", args.scaled_front, "front_scaled.json", ["strategy.scale_kept=true"]),
                  "FRONT": front("FRONT", args.front, "front.json", [])}
        results: dict[str, list[list[dict[str, Any]]]] = {}
        for name in names:
            for seed in range(seeds):
                where = args.out / name / f"seed{seed}"
                if not (args.reuse and where.is_dir() and any(where.iterdir())):
                    sets = [f"name={name}", f"seed={seed}", f"logging.out_dir={where}", *common,
                            *(fill(s, fronts) for s in RUNS[name])]
                    print(f"== {name}, seed {seed}", flush=True)
                    run("run", BASE, *(a for s in sets for a in ("--set", s)))
                newest = max(where.iterdir())  # run folders end in their start time
                results.setdefault(name, []).append(read_run(newest)["metrics"])
    finally:
        ray.shutdown()
    text, rows = summarise(results, args.targets)
    (args.out / "table.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(rows, indent=1))
    plot(results, args.targets, args.out / "accuracy.png")
    print(text)
    print(f"-> {args.out}/table.md, results.json, accuracy.png")


if __name__ == "__main__":
    main()
