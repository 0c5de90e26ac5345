"""Every method against its own paper's headline claim: the fidelity table.

One row per method: the paper, its claim, the workload here (the nearest one that runs offline), the figure
measured here (mean ± standard deviation over the seeds) and a verdict drawn from the figures by the row's
own rule: reproduced, reproduced in direction only, or not reproduced.

- Width methods, on `configs/fidelity_width.yaml` (VGG-11 at width 0.25 on `shapes`, 10 classes, 100 devices
  in three tiers at rates 1 / 0.5 / 0.25, 10 a round): `small` at each width alone (the width trained by every
  device, static batch norm as HeteroFL trains), heterofl, fjord, fedrolex, fd at the tiers' rates, and fd at
  0.75 and 0.5 on every device. Nested methods are also scored at each width of their family
  (`platform/widths.py`).
- Task-wise decoupling, on `configs/fidelity_taskwise.yaml` with AlexNet and VGG-11 (width 0.25) on `shapes`
  at 10 and 100 classes: central, grouped (one task a device), attributed, non-IID by task (each device holds
  mostly its own task's classes and trains that task), and `tasks: budget` (3 / 2 / 1 tasks by tier).
- DISTREAL: its own benchmark's summaries (`benchmarks/distreal_paper.py`, shapes), read, not run.

Every run leaves a JSON summary under `benchmarks/results/fidelity/<workload>/<run>/seed<k>.json` (as
`distreal_paper.py` does); a summary for the same config is read, not run again, so rows can be measured over
several sittings, more seeds added, and a row re-checked alone (`--only`). Writes `fidelity.md` (the table and
the per-run figures) and one plot per row, `fidelity_<row>.png`, under `--out`.

    python benchmarks/fidelity.py [--seeds 3] [--only ROW ...] [--table-only] [--smoke-test] [--out docs]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import ray  # noqa: E402

from common.summaries import one_run  # noqa: E402
from edgeweave.platform.config import load_config  # noqa: E402
from edgeweave.platform.data.speech_synth import generate  # noqa: E402
from edgeweave.platform.widths import run_width_scores  # noqa: E402

WIDTH, TASKWISE, KWS = "configs/fidelity_width.yaml", "configs/fidelity_taskwise.yaml", "configs/fidelity_kws.yaml"
WIDTHS = (0.25, 0.5, 1.0)
TIERS = "rates: {strong: 1.0, medium: 0.5, weak: 0.25}"


def every(rate: float) -> str:
    return f"rates: {{strong: {rate}, medium: {rate}, weak: {rate}}}"


def by_task(classes: int) -> str:
    """Device d holds mostly task d's classes (10 tasks of classes/10 each), 20 % of each class elsewhere."""
    k = classes // 10
    return f"partition={{policy: classes, elsewhere: 0.2, classes: {[list(range(t * k, t * k + k)) for t in range(10)]}}}"


def taskwise_workload(model: str, classes: int) -> tuple[str, list[str]]:
    return TASKWISE, [f"model.name={model}", f"data.num_classes={classes}"]


WORKLOADS = {  # folder: (config, overrides)
    "width": (WIDTH, []),
    "alexnet-10": taskwise_workload("alexnet", 10),
    "vgg11-10": taskwise_workload("vgg11", 10),
    "alexnet-100": taskwise_workload("alexnet", 100),
    "vgg11-100": taskwise_workload("vgg11", 100),
    "kws-10": (KWS, []),
    "width-160": (WIDTH, ["training.rounds=160", "training.eval_every=8"]),  # four times as long
    "alexnet-10-60": (TASKWISE, [*taskwise_workload("alexnet", 10)[1], "training.rounds=60"]),  # three times
}
TASKWISE_WORKLOADS = ("alexnet-10", "vgg11-10", "alexnet-100", "vgg11-100", "kws-10")
SPEECH = {"train": 2500, "validation": 100, "test": 600}  # clips of the generated keyword set (ten words)
WIDTH_RUNS = {  # run: (overrides, widths its model is scored at)
    "small-0.25": (["strategy={name: small, rate: 0.25}"], ()),
    "small-0.5": (["strategy={name: small, rate: 0.5}"], ()),
    "small-1": (["strategy={name: small, rate: 1.0}"], ()),
    "heterofl": ([f"strategy={{name: heterofl, {TIERS}}}"], WIDTHS),
    "fjord": ([f"strategy={{name: fjord, {TIERS}}}"], WIDTHS),
    "fedrolex": ([f"strategy={{name: fedrolex, {TIERS}}}"], ()),
    "fd": ([f"strategy={{name: fd, {TIERS}}}"], ()),
    "fd-0.75": ([f"strategy={{name: fd, {every(0.75)}}}"], ()),
    "fd-0.5": ([f"strategy={{name: fd, {every(0.5)}}}"], ()),
}


def taskwise_runs(classes: int, names: Sequence[str]) -> dict[str, tuple[list[str], tuple]]:
    runs = {
        "central": (["strategy={name: central}", "training.batch_size=32", "training.rounds=12",
                     "training.local_epochs=1", "training.eval_every=1"], ()),
        "grouped": ([], ()),
        "attributed": (["strategy.mode=attributed", "strategy.keep=0.3", "strategy.warmup_rounds=1"], ()),
        "by-task": ([by_task(classes), "strategy.tasks=held"], ()),
        "budget": (["strategy.tasks=budget", "strategy.tasks_per_device=3"], ()),
    }
    return {n: runs[n] for n in names}


ALL = ("central", "grouped", "attributed", "by-task", "budget")
RUNS = {"width": WIDTH_RUNS, "alexnet-10": taskwise_runs(10, ALL), "vgg11-10": taskwise_runs(10, ALL),
        "alexnet-100": taskwise_runs(100, ALL[:3]), "vgg11-100": taskwise_runs(100, ALL[:3]),
        "kws-10": taskwise_runs(10, ("central", "grouped", "by-task")),
        "width-160": {n: WIDTH_RUNS[n] for n in ("heterofl", "small-1", "small-0.25")},
        "alexnet-10-60": taskwise_runs(10, ("central", "grouped"))}
DISTREAL = Path("benchmarks/results/distreal_paper/shapes")  # DISTREAL's own benchmark's summaries
RESULTS = Path("benchmarks/results/fidelity")
Results = dict[tuple[str, str], list[dict[str, Any]]]  # (workload, run) -> one summary per seed


def stat(seeds: Sequence[dict], key: str = "final_accuracy") -> tuple[float, float]:
    values = [s[key] for s in seeds if s.get(key) is not None]
    return (float(np.mean(values)), float(np.std(values))) if values else (float("nan"), float("nan"))


def width_stat(seeds: Sequence[dict], rate: float) -> tuple[float, float]:
    values = [s["widths"][str(rate)] for s in seeds]
    return float(np.mean(values)), float(np.std(values))


def fmt(ms: tuple[float, float]) -> str:
    return f"{ms[0]:.3f} ± {ms[1]:.3f}"


def above(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """a's mean above b's by more than their spreads together: a difference the seeds do not explain."""
    return a[0] - b[0] > a[1] + b[1]


@dataclass(frozen=True)
class Row:
    """One method's line of the table: its paper, the claim, what it runs here, and how figures become a verdict."""

    paper: str
    claim: str
    workload: str
    runs: tuple[tuple[str, str], ...]  # (workload, run)
    judge: Callable[[Results], tuple[str, str, dict[str, tuple[float, float]]]]  # -> measured, verdict, bars


def judge_heterofl(r: Results, w: str = "width") -> tuple[str, str, dict]:
    mix, full, small = (stat(r[w, n]) for n in ("heterofl", "small-1", "small-0.25"))
    bars = {"HeteroFL mix 1/0.5/0.25": mix, "full width alone": full, "small (0.25) alone": small}
    measured = f"mix {fmt(mix)}, full alone {fmt(full)}, small {fmt(small)}"
    if above(mix, small) and full[0] - mix[0] <= 0.02:
        return measured, "reproduced", bars
    return measured, "direction only" if mix[0] > small[0] else "not reproduced", bars


def judge_fjord(r: Results) -> tuple[str, str, dict]:
    alone = dict(zip(WIDTHS, (stat(r["width", n]) for n in ("small-0.25", "small-0.5", "small-1"))))
    fj = {w: width_stat(r["width", "fjord"], w) for w in WIDTHS}
    ht = {w: width_stat(r["width", "heterofl"], w) for w in WIDTHS}
    fd = stat(r["width", "fd"])
    bars = {**{f"FjORD at {w:g}": fj[w] for w in WIDTHS}, **{f"alone at {w:g}": alone[w] for w in WIDTHS},
            **{f"HeteroFL at {w:g}": ht[w] for w in WIDTHS}, "FD (full model)": fd}
    measured = ("FjORD / alone / HeteroFL at " + "; ".join(f"{w:g}: {fj[w][0]:.3f} / {alone[w][0]:.3f} / {ht[w][0]:.3f}"
                                                           for w in WIDTHS) + f"; FD {fmt(fd)}")
    near_alone = all(fj[w][0] >= alone[w][0] - 0.02 for w in WIDTHS)
    beats = all(fj[w][0] >= ht[w][0] for w in WIDTHS) and fj[1.0][0] > fd[0]
    if near_alone and beats and above(fj[1.0], fd):
        return measured, "reproduced", bars
    return measured, "direction only" if near_alone or beats else "not reproduced", bars


def judge_fedrolex(r: Results) -> tuple[str, str, dict]:
    rolex, hetero = stat(r["width", "fedrolex"]), stat(r["width", "heterofl"])
    bars = {"FedRolex (rolling)": rolex, "HeteroFL (fixed)": hetero}
    measured = f"rolling {fmt(rolex)} against fixed {fmt(hetero)}"
    if above(rolex, hetero):
        return measured, "reproduced", bars
    return measured, "direction only" if rolex[0] > hetero[0] else "not reproduced", bars


def judge_fd(r: Results) -> tuple[str, str, dict]:
    full = stat(r["width", "small-1"])
    full_flops = stat(r["width", "small-1"], "total_flops")[0]
    parts, bars, verdict = [], {"no dropout": full}, "not reproduced"
    for name in ("fd-0.75", "fd-0.5"):
        acc, flops = stat(r["width", name]), stat(r["width", name], "total_flops")[0]
        saving = full_flops / flops
        parts.append(f"keep {name[3:]}: {fmt(acc)} at {saving:.2f}x less computation")
        bars[f"FD keep {name[3:]}"] = acc
        if saving >= 1.5 and acc[0] >= full[0] - 0.01:
            verdict = "reproduced"
        elif saving >= 1.5 and acc[0] >= full[0] - 0.03 and verdict != "reproduced":
            verdict = "direction only"
    return f"no dropout {fmt(full)}; " + "; ".join(parts), verdict, bars


def judge_taskwise(r: Results, workloads: Sequence[str] = TASKWISE_WORKLOADS) -> tuple[str, str, dict]:
    parts, bars, best_all = [], {}, []
    for w in workloads:
        central = stat(r[w, "central"])
        bars[f"{w} central"] = central
        within = []
        for run in [n for n in RUNS[w] if n != "central"]:
            acc, saving = stat(r[w, run]), stat(r[w, run], "min_saving")[0]
            bars[f"{w} {run} ({saving:.1f}x)"] = acc
            if acc[0] >= central[0] - 0.01:
                within.append((saving, run))
        best = max(within, default=None)
        best_all.append(best[0] if best else 0.0)
        parts.append(f"{w}: central {central[0]:.3f}, " + (f"{best[0]:.1f}x ({best[1]})" if best else "none within 1 pt"))
    verdict = ("reproduced" if best_all and max(best_all) >= 9 else
               "direction only" if any(b > 1 for b in best_all) else "not reproduced")
    return "largest saving within 1 pt of central: " + "; ".join(parts), verdict, bars


def judge_distreal(r: Results) -> tuple[str, str, dict]:
    def time_to(s: dict, target: float = 0.4) -> Optional[float]:
        return next((c["virtual_time"] for c in s["curve"] if (c["test_accuracy"] or 0) >= target), None)

    names = ("distreal", "fd", "heterofl", "fedavg-drop")
    bars = {n: stat(r["distreal", n]) for n in names}
    times = {n: [t for t in map(time_to, r["distreal", n]) if t is not None] for n in names}
    measured = ("final " + ", ".join(f"{n} {fmt(bars[n])}" for n in names) + "; virtual s to 0.4: "
                + ", ".join(f"{n} {f'{np.mean(t):.0f}' if t else '-'} ({len(t)}/{len(r['distreal', n])})"
                            for n, t in times.items()))
    faster = all(times["distreal"] and (not times[n] or np.mean(times["distreal"]) < np.mean(times[n]))
                 for n in names[1:])
    as_good = all(bars["distreal"][0] >= bars[n][0] - 0.01 for n in names[1:])
    verdict = "reproduced" if faster and as_good else "direction only" if faster or as_good else "not reproduced"
    return measured, verdict, bars


ROWS = {
    "heterofl": Row("Diao, Ding, Tarokh, ICLR 2021",
                    "a global model from a mix of widths nears the full model trained alone and beats the small one "
                    "(CIFAR-10 PreResNet-18 IID, Flower's re-run: a 90.83, a-e 89.98, e 76.53 %)",
                    "shapes 10, VGG-11, tiers 1/0.5/0.25", (("width", "heterofl"), ("width", "small-1"),
                                                            ("width", "small-0.25")), judge_heterofl),
    "heterofl-160": Row("Diao, Ding, Tarokh, ICLR 2021", "as above, trained four times as long",
                        "shapes 10, VGG-11, tiers 1/0.5/0.25, 160 rounds",
                        tuple(("width-160", n) for n in RUNS["width-160"]), partial(judge_heterofl, w="width-160")),
    "fjord": Row("Horváth et al., NeurIPS 2021",
                 "every width of the ordered family is close to a model trained at that width alone, and beats "
                 "HeteroFL and Federated Dropout at each width (ResNet-18, CIFAR-10; figures not readable offline)",
                 "shapes 10, VGG-11, tiers 1/0.5/0.25", (("width", "fjord"), ("width", "heterofl"), ("width", "fd"),
                                                         ("width", "small-0.25"), ("width", "small-0.5"),
                                                         ("width", "small-1")), judge_fjord),
    "fedrolex": Row("Alam et al., NeurIPS 2022",
                    "rolling sub-model windows beat HeteroFL's fixed ones at the same widths (CIFAR-10/100; "
                    "figures not readable offline)",
                    "shapes 10, VGG-11, tiers 1/0.5/0.25", (("width", "fedrolex"), ("width", "heterofl")),
                    judge_fedrolex),
    "fd": Row("Caldas et al., arXiv 1812.07210, 2018",
              "Federated Dropout cuts local computation up to 1.7x (with compression, download 14x and upload 28x) "
              "without degrading the final model (EMNIST, CIFAR-10)",
              "shapes 10, VGG-11, every device at keep 0.75 / 0.5", (("width", "small-1"), ("width", "fd-0.75"),
                                                                     ("width", "fd-0.5")), judge_fd),
    "taskwise": Row("Chen & Qin, SEC 2020",
                    "up to 11.8x less computation per device at the central server's test accuracy (AlexNet and "
                    "VGG on CIFAR-10, CIFAR-100, keyword spotting)",
                    "shapes 10 and 100, AlexNet and VGG-11 (w0.25); kws_cnn on ten generated words; 10 devices",
                    tuple((w, n) for w in TASKWISE_WORKLOADS for n in RUNS[w]), judge_taskwise),
    "taskwise-60": Row("Chen & Qin, SEC 2020", "as above, the task-wise run trained three times as long",
                       "shapes 10, AlexNet (w0.25), grouped, 60 rounds", tuple(("alexnet-10-60", n) for n in
                                                                           RUNS["alexnet-10-60"]),
                       partial(judge_taskwise, workloads=("alexnet-10-60",))),
    "distreal": Row("Rapp et al., AAAI 2022",
                    "per-layer dropout chosen per mini-batch converges significantly faster than its baselines "
                    "without losing final accuracy (no figure in the abstract)",
                    "shapes 10, VGG-11 w0.25, 100 devices, markov speed, 8 s deadline (distreal_paper.py)",
                    tuple(("distreal", n) for n in ("distreal", "fd", "heterofl", "fedavg-drop")), judge_distreal),
}
# --smoke-test: one seed, 2 rounds on few devices and samples, a scratch folder: the HeteroFL row, one task-wise run.
SMOKE = ["training.rounds=2", "devices.count=10", "devices.per_round=4", "model.norm_samples=64", "ray.num_workers=1",
         "training.eval_every=1"]
SMOKE_SHAPES = ["data.train_samples=400", "data.test_samples=100"]
SMOKE_RUNS = (("width", "heterofl"), ("width", "small-1"), ("width", "small-0.25"), ("alexnet-10", "by-task"),
              ("kws-10", "grouped"))
SMOKE_SPEECH = {"train": 200, "validation": 20, "test": 60}


def width_extra(widths: Sequence[float]) -> Optional[Callable[[Path], dict[str, Any]]]:
    """What a nested method's summary adds: its final model's accuracy at each width of its family."""
    if not widths:
        return None
    return lambda run_dir: {"widths": {str(k): v[0] for k, v in run_width_scores(run_dir, widths).items()}}


def table(rows: dict[str, Row], judged: dict[str, tuple[str, str, dict]], seeds: dict[str, int]) -> str:
    lines = ["| method | paper | its claim | workload here | measured here (seeds) | verdict |",
             "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        measured, verdict, _ = judged[name]
        lines.append(f"| {name} | {row.paper} | {row.claim} | {row.workload} | {measured} ({seeds[name]}) | "
                     f"**{verdict}** |")
    return "\n".join(lines) + "\n"


def runs_table(results: Results) -> str:
    lines = ["| workload | run | seeds | final accuracy | min device saving | GFLOPs | wall s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (w, n), seeds in results.items():
        saving = stat(seeds, "min_saving")[0]
        lines.append(f"| {w} | {n} | {len(seeds)} | {fmt(stat(seeds))} | {saving:.2f}x | "
                     f"{stat(seeds, 'total_flops')[0] / 1e9:.0f} | {stat(seeds, 'wall_seconds')[0]:.0f} |")
    return "\n".join(lines) + "\n"


def plot(name: str, bars: dict[str, tuple[float, float]], verdict: str, path: Path) -> None:
    """The row's figures: mean final accuracy with the seeds' standard deviation."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(bars) + 2), 4.2))
    labels = list(bars)
    ax.bar(range(len(bars)), [bars[k][0] for k in labels], yerr=[bars[k][1] for k in labels], capsize=3,
           color=[f"C{i % 10}" for i in range(len(bars))])
    ax.set_xticks(range(len(bars)), labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{name}: {verdict}")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--only", nargs="+", choices=list(ROWS), help="measure only these rows")
    p.add_argument("--results", type=Path, default=RESULTS, help="where the per-run summaries are kept")
    p.add_argument("--out", type=Path, default=Path("docs"), help="where the table and the plots go")
    p.add_argument("--table-only", action="store_true", help="run nothing: the table of the summaries kept")
    p.add_argument("--smoke-test", action="store_true",
                   help="the HeteroFL row and one task-wise run, short, one seed, summaries under --out/results; "
                        "checks every run's config")
    args = p.parse_args()
    rows = {n: ROWS[n] for n in (args.only or ROWS)}
    wanted = list(dict.fromkeys(r for row in rows.values() for r in row.runs if r[0] != "distreal"))
    seeds = 1 if args.smoke_test else args.seeds
    common = ["logging.progress=false", "logging.wandb.mode=disabled", "logging.checkpoint_every=0",
              *(SMOKE if args.smoke_test else [])]
    results_root = args.out / "results" if args.smoke_test else args.results
    scratch = Path(tempfile.mkdtemp(prefix="fidelity-"))
    smoke_data = {"shapes": SMOKE_SHAPES, "kws": [f"data.root={scratch / 'speech'}"]}  # kws: a small tree of its own

    def sets(w: str, n: str) -> list[str]:
        data = smoke_data["kws" if w == "kws-10" else "shapes"] if args.smoke_test else []
        return [f"name={w}-{n}", *WORKLOADS[w][1], *common, *data, *RUNS[w][n][0]]

    for w, n in wanted:  # a bad override fails here, before anything runs
        load_config(WORKLOADS[w][0], sets(w, n))
    todo = list(SMOKE_RUNS) if args.smoke_test else wanted
    if any(w == "kws-10" for w, _ in todo) and not args.table_only:
        speech = load_config(KWS, sets("kws-10", "grouped")).data.params
        if generate(Path(speech.root), SMOKE_SPEECH if args.smoke_test else SPEECH, speech.words):
            print(f"generated the keyword set under {speech.root}", flush=True)
    results: Results = {}
    if not args.table_only:
        ray.init(address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False,
                 logging_level=logging.WARNING)
    try:
        for seed in range(seeds):  # seed by seed: a benchmark stopped early leaves whole seeds behind
            for w, n in todo:
                kept = one_run(w, WORKLOADS[w][0], n, seed, sets(w, n), results_root / w, scratch,
                               run_missing=not args.table_only, extra=width_extra(RUNS[w][n][1]))
                if kept:
                    results.setdefault((w, n), []).append(kept)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    if not args.smoke_test and any(r[0] == "distreal" for row in rows.values() for r in row.runs):
        for n in ("distreal", "fd", "heterofl", "fedavg-drop"):
            found = sorted((DISTREAL / n).glob("seed*.json"))
            if found:
                results["distreal", n] = [json.loads(f.read_text()) for f in found]
    measurable = {k: r for k, r in rows.items() if all(x in results for x in r.runs)}
    judged = {k: r.judge(results) for k, r in measurable.items()}
    counts = {k: min(len(results[x]) for x in r.runs) for k, r in measurable.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    text = ("## The fidelity table\n\n" + table(measurable, judged, counts)
            + "\n## Every run (mean ± std over the seeds)\n\n" + runs_table(results))
    (args.out / "fidelity.md").write_text(text)
    for name, (_, verdict, bars) in judged.items():
        plot(name, bars, verdict, args.out / f"fidelity_{name}.png")
    missing = sorted(set(rows) - set(measurable))
    print(text + (f"\nrows without all their runs yet: {', '.join(missing)}\n" if missing else ""))
    print(f"-> {args.out}/fidelity.md and a plot per row; summaries under {results_root}")


if __name__ == "__main__":
    main()
