"""DISTREAL against its paper's baselines, then against the platform's own, over several seeds and two data sets.

Each data set has its config: `configs/distreal_shapes.yaml` (generated shapes and textures, where a
wider network learns more) and `configs/distreal_paper.yaml` (smooth prototypes plus noise). Both
train VGG-11 with every method's own batch norm (`model.norm` as its paper does it: static for
DISTREAL, Federated Dropout and HeteroFL, per width for FjORD, running for FedAvg), 100 devices in
three tiers with markov speed, and fixed-length rounds ending at a deadline that most device-rounds
cannot meet with their full work at full width. A seed fixes the data, the model's start and every
device's trace; each run with that seed sees the same ones. The runs, the paper's baselines first:

- fedavg-drop (FedAvg dropping the devices that lack the time for their full work), fd (Federated
  Dropout) and heterofl, both at the largest rate whose work fits the deadline (`rate_by: budget`);
- fedavg-partial (FedAvg keeping stragglers' partial work) and fjord (`rate_by: budget`);
- distreal with the config's front, and its two ablations: a front of uniform rates (what the
  per-layer search adds) and one vector per round (what choosing per mini-batch adds).

Every run leaves a small JSON summary (config hash, seed, curve, final figures) under
`benchmarks/results/distreal_paper/<data>/<run>/seed<k>.json`; a run whose summary holds the same
config hash is read, not run again, so more seeds or runs add to the table without redoing the rest.
The uniform front is searched once per data set into the same folder. The table gives, per run,
mean ± standard deviation over the seeds of the virtual time to two target accuracies (k/n where
only k seeds got there), of the final accuracy (mean of the last three evaluations) and of its
change over the last quarter of the run (how far it still moves); the plot, mean accuracy against
virtual time per data set.

    python benchmarks/distreal_paper.py [--seeds 5] [--data shapes synthetic] [--only RUN ...] [--table-only]
        [--smoke-test]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import ray  # noqa: E402
from common.summaries import mean_spread, one_run, run  # noqa: E402

from edgeweave.platform.config.schema import load_config  # noqa: E402

DATA = {  # data set: (its config, default target accuracies)
    "shapes": ("configs/distreal_shapes.yaml", (0.4, 0.5)),
    "synthetic": ("configs/distreal_paper.yaml", (0.6, 0.7)),
}
BUDGET = "rate_by: budget, allowed: [1.0, 0.75, 0.5, 0.25]"
FULL = "rates: {strong: 1.0, medium: 1.0, weak: 1.0}"
RUNS = {  # each run's overrides, in the table's order; UNIFORM is the searched uniform front
    "fedavg-drop": ["strategy={name: fedavg}", "devices.stragglers=drop"],
    "fd": [f"strategy={{name: fd, {FULL}, {BUDGET}}}"],
    "heterofl": [f"strategy={{name: heterofl, {FULL}, {BUDGET}}}"],
    "fedavg-partial": ["strategy={name: fedavg}"],
    "fjord": [f"strategy={{name: fjord, {FULL}, {BUDGET}}}"],
    "distreal": [],
    "distreal-uniform-front": ["strategy.front=UNIFORM"],
    "distreal-one-vector-per-round": ["strategy.choose=round"],
}
PAPER_BASELINES = ("fedavg-drop", "fd", "heterofl")
RESULTS = Path("benchmarks/results/distreal_paper")
# --smoke-test: 2 rounds on 20 devices, two runs, one seed, one data set, into a scratch folder.
SMOKE_RUNS = ("fedavg-drop", "distreal-uniform-front")
SMOKE = [
    "devices.count=20",
    "devices.per_round=4",
    "ray.num_workers=1",
    "data.train_samples=400",
    "data.test_samples=100",
    "training.local_epochs=1",
    "training.rounds=2",
    "model.norm_samples=64",
    "strategy.dse_steps=4",
    "strategy.dse_seeds=1",
    "strategy.dse_warm_rounds=0",
]


def overrides(name: str, uniform: Path, common: Sequence[str]) -> list[str]:
    return [f"name={name}", *common, *(s.replace("UNIFORM", str(uniform)) for s in RUNS[name])]


def time_to(curve: list[dict[str, Any]], target: float) -> Optional[float]:
    return next((c["virtual_time"] for c in curve if (c["test_accuracy"] or 0.0) >= target), None)


def table(results: dict[str, list[dict]], targets: Sequence[float]) -> str:
    """The Markdown table of one data set, in RUNS order."""
    head = (
        "| run | seeds | "
        + " | ".join(f"virtual s to {t:g}" for t in targets)
        + " | final accuracy | change over the last quarter | GFLOPs |"
    )
    lines = [head, "|---|" + "---:|" * (len(targets) + 4)]
    for name, seeds in results.items():
        cells = [mean_spread([time_to(s["curve"], t) for s in seeds]) for t in targets]
        finals = [s["final_accuracy"] for s in seeds]
        moves = [s["last_quarter_change"] for s in seeds]
        label = f"{name} (paper's baseline)" if name in PAPER_BASELINES else name
        lines.append(
            f"| {label} | {len(seeds)} | " + " | ".join(cells) + f" | {np.mean(finals):.3f} ± {np.std(finals):.3f} | "
            f"{np.mean(moves):+.3f} | {np.mean([s['total_flops'] for s in seeds]) / 1e9:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(per_data: dict[str, dict[str, list[dict]]], targets: dict[str, Sequence[float]], path: Path) -> None:
    """Mean test accuracy over the seeds against virtual time, one panel per data set."""
    fig, axes = plt.subplots(1, len(per_data), figsize=(7 * len(per_data), 4.8), squeeze=False)
    for ax, (data, results) in zip(axes[0], per_data.items()):
        for name, seeds in results.items():
            n = min(len(s["curve"]) for s in seeds)
            t = np.mean([[c["virtual_time"] for c in s["curve"][:n]] for s in seeds], axis=0)
            acc = np.mean([[c["test_accuracy"] for c in s["curve"][:n]] for s in seeds], axis=0)
            style = "-" if name.startswith("distreal") else ("--" if name in PAPER_BASELINES else ":")
            ax.plot(t, acc, style, label=name, linewidth=2.4 if name == "distreal" else 1.3)
        for target in targets[data]:
            ax.axhline(target, color="0.6", linestyle=":", linewidth=1)
        counts = sorted({len(s) for s in results.values()})
        ax.set_title(f"{data}: mean of {'-'.join(map(str, [counts[0], counts[-1]][: len(counts)]))} seeds a run")
        ax.set_xlabel("virtual time (s)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--data", nargs="+", choices=sorted(DATA), default=list(DATA))
    p.add_argument("--only", nargs="+", choices=list(RUNS), help="run only these")
    p.add_argument("--results", type=Path, default=RESULTS, help="where the per-run summaries are kept")
    p.add_argument("--out", type=Path, default=Path("docs"), help="where the table and the plot go")
    p.add_argument(
        "--table-only",
        action="store_true",
        help="run nothing: the table and plot of the summaries already kept for these configs",
    )
    p.add_argument(
        "--smoke-test",
        action="store_true",
        help="two runs of 2 rounds on 20 devices, one seed; summaries under --out/results",
    )
    args = p.parse_args()
    names = list(SMOKE_RUNS if args.smoke_test else (args.only or RUNS))
    datasets = args.data[:1] if args.smoke_test else args.data
    seeds = 1 if args.smoke_test else args.seeds
    common = [
        "logging.progress=false",
        "logging.wandb.mode=disabled",
        "logging.checkpoint_every=0",
        *(SMOKE if args.smoke_test else []),
    ]
    scratch = Path(tempfile.mkdtemp(prefix="distreal-paper-"))  # the runs' own folders, removed at the end
    results_root = args.out / "results" if args.smoke_test else args.results
    out = args.out
    ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, logging_level=logging.WARNING)
    per_data: dict[str, dict[str, list[dict]]] = {}
    try:
        for data in datasets:
            base, _ = DATA[data]
            folder = results_root / data
            uniform = (folder / "front_uniform.json").resolve()  # a front's relative path is the config's
            for name in names:  # a bad override fails here, before anything runs (a front still to search, after)
                searched = uniform.is_file() or not any("UNIFORM" in s for s in RUNS[name])
                load_config(base, overrides(name, uniform, common), check_strategy=searched)
            if any("UNIFORM" in s for n in names for s in RUNS[n]) and not uniform.is_file() and not args.table_only:
                run(
                    "dse",
                    base,
                    "--out",
                    str(uniform),
                    "--force",
                    *(a for s in [*common, "strategy.uniform_only=true"] for a in ("--set", s)),
                )
            done: dict[str, list[dict]] = {name: [] for name in names}
            for seed in range(seeds):  # seed by seed: a benchmark stopped early leaves whole seeds behind
                for name in names:
                    kept = one_run(
                        data,
                        base,
                        name,
                        seed,
                        overrides(name, uniform, common),
                        folder,
                        scratch,
                        run_missing=not args.table_only,
                    )
                    done[name] += [kept] if kept else []
            per_data[data] = {name: seeds_of for name, seeds_of in done.items() if seeds_of}
    finally:
        ray.shutdown()
    text = "".join(f"### {data}\n\n{table(results, DATA[data][1])}\n" for data, results in per_data.items())
    out.mkdir(parents=True, exist_ok=True)
    (out / "distreal_paper.md").write_text(text)
    plot(per_data, {d: DATA[d][1] for d in per_data}, out / "distreal_paper.png")
    print(text)
    print(f"-> {out}/distreal_paper.md, distreal_paper.png; summaries under {results_root}")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
