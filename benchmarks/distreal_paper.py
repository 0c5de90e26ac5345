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

    python benchmarks/distreal_paper.py [--seeds 5] [--data shapes synthetic] [--only RUN ...] [--table-only] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import ray  # noqa: E402

from edgeweave.cli import main as edgeweave  # noqa: E402
from edgeweave.platform.checkpoint import run_fingerprint  # noqa: E402
from edgeweave.platform.config import load_config  # noqa: E402
from edgeweave.platform.report import read_run  # noqa: E402

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
SMOKE = ["devices.count=20", "devices.per_round=4", "ray.num_workers=1", "data.train_samples=400",
         "data.test_samples=100", "training.local_epochs=1", "training.rounds=2", "model.norm_samples=64",
         "strategy.dse_steps=4", "strategy.dse_seeds=1", "strategy.dse_warm_rounds=0"]


def run(*argv: str) -> None:
    """One `edgeweave` command, in this process and on its Ray; a failure stops the benchmark."""
    code = edgeweave(list(argv))
    if code:
        raise SystemExit(f"edgeweave {argv[0]} exited with {code}")


def overrides(name: str, uniform: Path, common: Sequence[str]) -> list[str]:
    return [f"name={name}", *common, *(s.replace("UNIFORM", str(uniform)) for s in RUNS[name])]


def summary(name: str, data: str, seed: int, config_hash: str, metrics: list[dict[str, Any]],
            wall: float) -> dict[str, Any]:
    """What a run leaves in the repository: enough to redraw the table and the plot."""
    evaluated = [m for m in metrics if m.get("test_accuracy") is not None]
    curve = [{k: m.get(k) for k in ("round", "virtual_time", "test_accuracy", "test_loss", "cumulative_flops")}
             for m in evaluated]
    accs = [m["test_accuracy"] for m in evaluated]
    quarter = max(1, len(accs) // 4)
    return {"run": name, "data": data, "seed": seed, "config_hash": config_hash, "rounds": len(metrics),
            "curve": curve, "final_accuracy": float(np.mean(accs[-3:])),
            "last_quarter_change": float(np.mean(accs[-3:]) - np.mean(accs[-quarter - 3:-quarter] or accs[:1])),
            "virtual_time": metrics[-1]["virtual_time"], "total_flops": metrics[-1]["cumulative_flops"],
            "wall_seconds": round(wall, 1)}


def one_run(data: str, base: str, name: str, seed: int, sets: list[str], folder: Path, scratch: Path,
            run_missing: bool = True) -> Optional[dict]:
    """The run's summary: read when `folder` holds one for the same config, else run and written (None when
    there is none and `run_missing` is false)."""
    cfg = load_config(base, [*sets, f"seed={seed}"])
    config_hash = run_fingerprint(cfg)
    path = folder / name / f"seed{seed}.json"
    if path.is_file():
        kept = json.loads(path.read_text())
        if kept.get("config_hash") == config_hash:
            return kept
    if not run_missing:
        return None
    where = scratch / data / name / f"seed{seed}"
    print(f"== {data}: {name}, seed {seed}", flush=True)
    t0 = time.perf_counter()
    run("run", base, *(a for s in [*sets, f"seed={seed}", f"logging.out_dir={where}"] for a in ("--set", s)))
    metrics = read_run(max(where.iterdir()))["metrics"]
    out = summary(name, data, seed, config_hash, metrics, time.perf_counter() - t0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


def time_to(curve: list[dict[str, Any]], target: float) -> Optional[float]:
    return next((c["virtual_time"] for c in curve if (c["test_accuracy"] or 0.0) >= target), None)


def mean_spread(values: Sequence[Optional[float]], digits: int = 0) -> str:
    """'mean ± std (k/n)' over the values reached; '-' when none was."""
    got = [v for v in values if v is not None]
    if not got:
        return f"- (0/{len(values)})"
    reached = "" if len(got) == len(values) else f" ({len(got)}/{len(values)})"
    return f"{np.mean(got):.{digits}f} ± {np.std(got):.{digits}f}{reached}"


def table(results: dict[str, list[dict]], targets: Sequence[float]) -> str:
    """The Markdown table of one data set, in RUNS order."""
    head = ("| run | seeds | " + " | ".join(f"virtual s to {t:g}" for t in targets)
            + " | final accuracy | change over the last quarter | GFLOPs |")
    lines = [head, "|---|" + "---:|" * (len(targets) + 4)]
    for name, seeds in results.items():
        cells = [mean_spread([time_to(s["curve"], t) for s in seeds]) for t in targets]
        finals = [s["final_accuracy"] for s in seeds]
        moves = [s["last_quarter_change"] for s in seeds]
        label = f"{name} (paper's baseline)" if name in PAPER_BASELINES else name
        lines.append(f"| {label} | {len(seeds)} | " + " | ".join(cells) + f" | {np.mean(finals):.3f} ± {np.std(finals):.3f} | "
                     f"{np.mean(moves):+.3f} | {np.mean([s['total_flops'] for s in seeds]) / 1e9:.0f} |")
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
    p.add_argument("--table-only", action="store_true",
                   help="run nothing: the table and plot of the summaries already kept for these configs")
    p.add_argument("--smoke-test", action="store_true",
                   help="two runs of 2 rounds on 20 devices, one seed; summaries under --out/results")
    args = p.parse_args()
    names = list(SMOKE_RUNS if args.smoke_test else (args.only or RUNS))
    datasets = args.data[:1] if args.smoke_test else args.data
    seeds = 1 if args.smoke_test else args.seeds
    common = ["logging.progress=false", "logging.wandb.mode=disabled", "logging.checkpoint_every=0",
              *(SMOKE if args.smoke_test else [])]
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
                run("dse", base, "--out", str(uniform), "--force",
                    *(a for s in [*common, "strategy.uniform_only=true"] for a in ("--set", s)))
            done: dict[str, list[dict]] = {name: [] for name in names}
            for seed in range(seeds):  # seed by seed: a benchmark stopped early leaves whole seeds behind
                for name in names:
                    kept = one_run(data, base, name, seed, overrides(name, uniform, common), folder, scratch,
                                   run_missing=not args.table_only)
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
