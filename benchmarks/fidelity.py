"""Every method against its own paper's headline claim: the fidelity table.

One row per method: the paper, its claim, the workload here (the nearest one that runs offline), the figure
measured here (mean ± standard deviation over the seeds; a seed fixes the data, the model's start and the traces
of every run, so two runs are also compared seed by seed) and a verdict drawn from the figures by the row's own
rule (each judge's docstring): reproduced, direction only, or not reproduced. Rows with fewer than 3 seeds are
marked provisional.

- Width methods, on `configs/fidelity_width.yaml` (VGG-11 at width 0.25 on `shapes`, 10 classes, 100 devices
  in three tiers at rates 1 / 0.5 / 0.25, 10 a round, 40 rounds): `small` at each width alone (the width
  trained by every device, static batch norm as HeteroFL trains), heterofl, fjord, fedrolex, fd at the tiers'
  rates, and fd at keep 0.75 and 0.5 on every device. Nested methods are also scored at each width of their
  family (`platform/report/widths.py`). `heterofl-160`: the HeteroFL row trained four times as long, one seed.
- Task-wise decoupling, on `configs/fidelity_taskwise.yaml` with AlexNet and VGG-11 (width 0.25) on `shapes`
  at 10 and 100 classes, and on `configs/fidelity_kws.yaml` (kws_cnn, ten words of the generated keyword set,
  written under data/ first): central and grouped (one task a device) on every workload; attributed on both
  models at 10 classes; non-IID by task (each device holds mostly its own task's classes and trains that task)
  and `tasks: budget` (3 / 2 / 1 tasks by tier) on AlexNet at 10 classes.
  `taskwise-60`: the grouped AlexNet run trained three times as long, one seed.
- Server update rules, FedProx and SCAFFOLD, on `configs/fidelity_optimizers.yaml` (digits split with
  Dirichlet 0.1 over 30 devices, 10 a round, 50 plain SGD steps each): FedAvg, FedProx (mu 0.1 and 1),
  SCAFFOLD, and FedAvg with the server rules momentum (FedAvgM), adam, yogi and adagrad at their defaults.
  With stragglers (`optimizers-stragglers`: a 6 s deadline that only the strong third of devices meets):
  FedAvg dropping them, FedAvg keeping their partial work, and FedProx keeping it, as FedProx's paper
  compares them. `scaffold-synthetic` and `fedopt-synthetic`: FedAvg, FedProx, SCAFFOLD, FedAdam and
  FedYogi again on a harder workload (CIFAR-shaped synthetic images at 16 px with noise std 4, 30
  rounds), where digits leaves every method near 0.95.
- FedBuff: FedAvg sync against async on `configs/distreal_digits.yaml`, as `benchmarks/async_vs_sync.py`.
- DISTREAL: its own benchmark's summaries (`benchmarks/distreal_paper.py`, shapes), read, not run.

Every run leaves a JSON summary under `benchmarks/results/fidelity/<workload>/<run>/seed<k>.json` (as
`distreal_paper.py` does); a summary for the same config is read, not run again, so rows can be measured over
several sittings, more seeds added, and a row re-checked alone (`--only`). Writes `fidelity.md` (the table and
the per-run figures) and one plot per row, `fidelity_<row>.png`, under `--out`. On the 2-core machine the 79
runs of every row took 2 h 33 min of wall time summed (while up to three benchmarks shared the cores).

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

from edgeweave.platform.config.schema import load_config  # noqa: E402
from edgeweave.platform.data.speech_synth import generate  # noqa: E402
from edgeweave.platform.report.widths import run_width_scores  # noqa: E402

WIDTH, TASKWISE, KWS = "configs/fidelity_width.yaml", "configs/fidelity_taskwise.yaml", "configs/fidelity_kws.yaml"
OPTIMIZERS = "configs/fidelity_optimizers.yaml"
WIDTHS = (0.25, 0.5, 1.0)
TIERS = "rates: {strong: 1.0, medium: 0.5, weak: 0.25}"


def every(rate: float) -> str:
    return f"rates: {{strong: {rate}, medium: {rate}, weak: {rate}}}"


def by_task(classes: int) -> str:
    """Device d holds mostly task d's classes (10 tasks of classes/10 each), 20 % of each class elsewhere."""
    k = classes // 10
    lists = [list(range(t * k, t * k + k)) for t in range(10)]
    return f"partition={{policy: classes, elsewhere: 0.2, classes: {lists}}}"


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
    "digits": ("configs/distreal_digits.yaml", ["strategy={name: fedavg}"]),  # as benchmarks/async_vs_sync.py
    "optimizers": (OPTIMIZERS, []),
    "optimizers-stragglers": (OPTIMIZERS, ["devices.deadline=6"]),  # strong devices finish; the rest straggle
    # harder than digits (which every method nears 0.95 on): CIFAR-shaped template images at 16 px, noise std 4
    "optimizers-synthetic": (
        OPTIMIZERS,
        ["data={name: synthetic, image_size: 16, difficulty: 4.0}", "training.rounds=30"],
    ),
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
        "central": (
            [
                "strategy={name: central}",
                "training.batch_size=32",
                "training.rounds=12",
                "training.local_epochs=1",
                "training.eval_every=1",
            ],
            (),
        ),
        "grouped": ([], ()),
        "attributed": (["strategy.mode=attributed", "strategy.keep=0.3", "strategy.warmup_rounds=1"], ()),
        "by-task": ([by_task(classes), "strategy.tasks=held"], ()),
        "budget": (["strategy.tasks=budget", "strategy.tasks_per_device=3"], ()),
    }
    return {n: runs[n] for n in names}


ALL = ("central", "grouped", "attributed", "by-task", "budget")  # every kind on AlexNet; fewer elsewhere (time)
RUNS = {
    "width": WIDTH_RUNS,
    "alexnet-10": taskwise_runs(10, ALL),
    "vgg11-10": taskwise_runs(10, ALL[:3]),
    "alexnet-100": taskwise_runs(100, ALL[:2]),
    "vgg11-100": taskwise_runs(100, ALL[:2]),
    "kws-10": taskwise_runs(10, ALL[:2]),
    "width-160": {n: WIDTH_RUNS[n] for n in ("heterofl", "small-1", "small-0.25")},
    "alexnet-10-60": taskwise_runs(10, ("grouped",)),
    "digits": {
        "fedavg-sync": (["training.rounds=60"], ()),  # 600 updates either way
        "fedavg-async": (["training.rounds=120", "aggregation={mode: async, buffer: 5, concurrency: 10}"], ()),
    },
}
RUNS["optimizers"] = {
    "fedavg": ([], ()),
    "fedprox": (["training.prox_mu=0.1"], ()),
    "fedprox-1": (["training.prox_mu=1.0"], ()),
    "scaffold": (["strategy={name: scaffold}"], ()),
    "fedavgm": (["aggregation.server={name: momentum}"], ()),
    "fedadam": (["aggregation.server={name: adam}"], ()),
    "fedyogi": (["aggregation.server={name: yogi}"], ()),
    "fedadagrad": (["aggregation.server={name: adagrad}"], ()),
}
RUNS["optimizers-synthetic"] = {
    n: RUNS["optimizers"][n] for n in ("fedavg", "fedprox", "scaffold", "fedadam", "fedyogi")
}
RUNS["optimizers-stragglers"] = {
    "fedavg-drop": (["devices.stragglers=drop"], ()),
    "fedavg-partial": (["devices.stragglers=partial"], ()),
    "fedprox-partial": (["devices.stragglers=partial", "training.prox_mu=0.1"], ()),
}
FEDBUFF_TARGETS = (0.85, 0.9)
SCAFFOLD_TARGET = {"optimizers": 0.9, "optimizers-synthetic": 0.8}  # accuracy whose first round is compared
DISTREAL = Path("benchmarks/results/distreal_paper/shapes")  # DISTREAL's own benchmark's summaries
RESULTS = Path("benchmarks/results/fidelity")
Results = dict[tuple[str, str], list[dict[str, Any]]]  # (workload, run) -> one summary per seed


@dataclass(frozen=True)
class Seeds:
    """One figure of a run, seed by seed. A seed fixes the data, the model's start and the traces for every run,
    so two runs are compared seed by seed (paired differences), not by their means alone."""

    values: dict[int, float]

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.values.values()))) if self.values else float("nan")

    @property
    def std(self) -> float:
        return float(np.std(list(self.values.values()))) if self.values else float("nan")

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.std:.3f}"

    def minus(self, other: "Seeds") -> "Seeds":
        return Seeds({k: v - other.values[k] for k, v in self.values.items() if k in other.values})

    def above(self, other: "Seeds") -> bool:
        """Higher by more than the seed-to-seed spread of the paired differences: a gap the seeds resolve."""
        d = self.minus(other)
        return bool(d.values) and d.mean > max(d.std, 0.0) and d.mean > 0


def figure(seeds: Sequence[dict], value: Callable[[dict], Optional[float]] = lambda s: s["final_accuracy"]) -> Seeds:
    """A figure of each seed's summary (mean of the last three evaluations by default); missing ones left out."""
    got = {s["seed"]: value(s) for s in seeds}
    return Seeds({k: float(v) for k, v in got.items() if v is not None})


def final_model(seeds: Sequence[dict], rate: Optional[float] = None) -> Seeds:
    """The final model's test accuracy: as the run last evaluated it, or (a nested run) scored at `rate` with its
    statistics recomputed at that width."""
    return figure(
        seeds, (lambda s: s["curve"][-1]["test_accuracy"]) if rate is None else (lambda s: s["widths"][str(rate)])
    )


@dataclass(frozen=True)
class Row:
    """One method's line of the table: its paper, the claim, what it runs here, and how figures become a verdict."""

    paper: str
    claim: str
    workload: str
    runs: tuple[tuple[str, str], ...]  # (workload, run)
    judge: Callable[[Results], tuple[str, str, dict[str, Seeds]]]  # -> measured, verdict, bars
    curves: bool = False  # plot accuracy against rounds (a claim about speed), not the final figures


def judge_heterofl(r: Results, w: str = "width") -> tuple[str, str, dict]:
    """Reproduced: the mix beats the small model by a gap the seeds resolve and ends within 2 points of the full
    model; direction only: it beats the small model so; else not."""
    mix, full, small = (figure(r[w, n]) for n in ("heterofl", "small-1", "small-0.25"))
    bars = {"HeteroFL mix 1/0.5/0.25": mix, "full width alone": full, "small (0.25) alone": small}
    measured = (
        f"mix {mix}, full alone {full}, small {small}; mix - small {mix.minus(small)}, "
        f"mix - full {mix.minus(full)} (paired)"
    )
    if mix.above(small):
        return measured, "reproduced" if full.mean - mix.mean <= 0.02 else "direction only", bars
    return measured, "not reproduced", bars


def judge_fjord(r: Results) -> tuple[str, str, dict]:
    """Every model is its final one: FjORD's and HeteroFL's scored at each width, the others as evaluated.
    Reproduced: at every width FjORD is within 2 points of the model trained there alone and above HeteroFL by a
    gap the seeds resolve, and its full model so above FD's; direction only: one of the two holds; else not."""
    alone = dict(zip(WIDTHS, (final_model(r["width", n]) for n in ("small-0.25", "small-0.5", "small-1"))))
    fj = {w: final_model(r["width", "fjord"], w) for w in WIDTHS}
    ht = {w: final_model(r["width", "heterofl"], w) for w in WIDTHS}
    fd = final_model(r["width", "fd"])
    bars = {
        **{f"FjORD at {w:g}": fj[w] for w in WIDTHS},
        **{f"trained alone at {w:g}": alone[w] for w in WIDTHS},
        **{f"HeteroFL at {w:g}": ht[w] for w in WIDTHS},
        "FD (full model)": fd,
    }
    measured = (
        "final models, FjORD / alone / HeteroFL at "
        + "; ".join(f"{w:g}: {fj[w]} / {alone[w]} / {ht[w]}" for w in WIDTHS)
        + f"; FD {fd}"
    )
    near_alone = all(fj[w].mean >= alone[w].mean - 0.02 for w in WIDTHS)
    beats = all(fj[w].above(ht[w]) for w in WIDTHS) and fj[1.0].above(fd)
    if near_alone and beats:
        return measured, "reproduced", bars
    return measured, "direction only" if near_alone or beats else "not reproduced", bars


def judge_fedrolex(r: Results) -> tuple[str, str, dict]:
    """Reproduced: rolling windows above fixed ones by a gap the seeds resolve; else not."""
    rolex, hetero = figure(r["width", "fedrolex"]), figure(r["width", "heterofl"])
    bars = {"FedRolex (rolling)": rolex, "HeteroFL (fixed)": hetero}
    measured = f"rolling {rolex} against fixed {hetero}; rolling - fixed {rolex.minus(hetero)} (paired)"
    return measured, "reproduced" if rolex.above(hetero) else "not reproduced", bars


def judge_fd(r: Results) -> tuple[str, str, dict]:
    """Reproduced: a keep rate saving at least 1.5x of the computation within 1 point of no dropout; direction
    only: within 3 points; else not."""
    full = figure(r["width", "small-1"])
    full_flops = figure(r["width", "small-1"], lambda s: s["total_flops"]).mean
    parts, bars, verdict = [], {"no dropout": full}, "not reproduced"
    for name in ("fd-0.75", "fd-0.5"):
        acc = figure(r["width", name])
        saving = full_flops / figure(r["width", name], lambda s: s["total_flops"]).mean
        parts.append(f"keep {name[3:]}: {acc} at {saving:.2f}x less computation")
        bars[f"FD keep {name[3:]}"] = acc
        if saving >= 1.5 and acc.mean >= full.mean - 0.01:
            verdict = "reproduced"
        elif saving >= 1.5 and acc.mean >= full.mean - 0.03 and verdict != "reproduced":
            verdict = "direction only"
    return f"no dropout {full}; " + "; ".join(parts), verdict, bars


def judge_taskwise(
    r: Results, pairs: Sequence[tuple[str, str]] = tuple((w, w) for w in TASKWISE_WORKLOADS)
) -> tuple[str, str, dict]:
    """Per (central's workload, task-wise runs' workload): the best task-wise run and the largest per-device
    saving within 1 point of central. Reproduced: one of at least 9x (about the paper's 11.8x); direction only:
    some saving within 1 point; else not. A central still rising over its last quarter makes the gap a floor."""
    parts, bars, best_all = [], {}, []
    for cw, w in pairs:
        seeds = {s["seed"] for n in RUNS[w] if n != "central" for s in r[w, n]}
        reference = [s for s in r[cw, "central"] if s["seed"] in seeds]  # the seeds the task-wise runs have
        central = figure(reference)
        rising = figure(reference, lambda s: s["last_quarter_change"]).mean
        bars[f"{w} central"] = central
        runs = {
            n: (figure(r[w, n]), figure(r[w, n], lambda s: s["min_saving"]).mean) for n in RUNS[w] if n != "central"
        }
        for n, (acc, saving) in runs.items():
            bars[f"{w} {n} ({saving:.1f}x)"] = acc
        within = [(saving, n) for n, (acc, saving) in runs.items() if acc.mean >= central.mean - 0.01]
        top = max(runs, key=lambda n: runs[n][0].mean)
        best_all.append(max(within)[0] if within else 0.0)
        parts.append(
            f"{w}: central {central}"
            + (f" (still rising, {rising:+.3f} over its last quarter)" if rising > 0.01 else "")
            + f", best {top} {runs[top][0]} at {runs[top][1]:.1f}x; within 1 pt: "
            + (f"{max(within)[0]:.1f}x ({max(within)[1]})" if within else "none")
        )
    verdict = "reproduced" if max(best_all) >= 9 else "direction only" if max(best_all) > 1 else "not reproduced"
    return "; ".join(parts), verdict, bars


def time_to(s: dict, target: float) -> Optional[float]:
    """Virtual seconds until a run's test accuracy first reaches `target` (None: never)."""
    return next((c["virtual_time"] for c in s["curve"] if (c["test_accuracy"] or 0) >= target), None)


def judge_distreal(r: Results) -> tuple[str, str, dict]:
    """Reproduced: DISTREAL reaches 0.4 sooner than each of its paper's baselines (in the mean over the seeds that
    got there) and ends within 1 point of each; direction only: one of the two; else not."""
    names = ("distreal", "fd", "heterofl", "fedavg-drop")
    bars = {n: figure(r["distreal", n]) for n in names}
    times = {n: [t for t in (time_to(s, 0.4) for s in r["distreal", n]) if t is not None] for n in names}
    measured = (
        "final "
        + ", ".join(f"{n} {bars[n]}" for n in names)
        + "; virtual s to 0.4: "
        + ", ".join(
            f"{n} {f'{np.mean(t):.0f}' if t else '-'} ({len(t)}/{len(r['distreal', n])})" for n, t in times.items()
        )
    )
    faster = all(
        times["distreal"] and (not times[n] or np.mean(times["distreal"]) < np.mean(times[n])) for n in names[1:]
    )
    as_good = all(bars["distreal"].mean >= bars[n].mean - 0.01 for n in names[1:])
    verdict = "reproduced" if faster and as_good else "direction only" if faster or as_good else "not reproduced"
    return measured, verdict, bars


def judge_fedbuff(r: Results) -> tuple[str, str, dict]:
    """Speed-up: sync's virtual time to each target over async's, seed by seed. Reproduced: at least 2.5x (about
    the paper's 3.3x) at both targets; direction only: above 1x by a margin the seeds resolve; else not."""
    sync, asynchronous = r["digits", "fedavg-sync"], r["digits", "fedavg-async"]
    bars = {"FedAvg, sync": figure(sync), "FedBuff (FedAvg, async)": figure(asynchronous)}
    speedups = []
    for target in FEDBUFF_TARGETS:
        ratio = Seeds(
            {
                a["seed"]: time_to(s, target) / time_to(a, target)
                for s, a in zip(sync, asynchronous)
                if time_to(s, target) and time_to(a, target)
            }
        )
        speedups.append(ratio)
    measured = (
        ", ".join(
            f"to {t:g}: {x} x sooner ({len(x.values)}/{len(sync)} seeds got there)"
            for t, x in zip(FEDBUFF_TARGETS, speedups)
        )
        + f"; final accuracy sync {bars['FedAvg, sync']}, async {bars['FedBuff (FedAvg, async)']}"
    )
    ones = Seeds({k: 1.0 for k in speedups[0].values})
    if all(x.mean >= 2.5 for x in speedups):
        return measured, "reproduced", bars
    return measured, "direction only" if all(x.above(ones) for x in speedups) else "not reproduced", bars


def rounds_to(s: dict, target: float) -> Optional[float]:
    """Rounds until a run's test accuracy first reaches `target` (None: never)."""
    return next((c["round"] + 1 for c in s["curve"] if (c["test_accuracy"] or 0) >= target), None)


def judge_fedprox(r: Results) -> tuple[str, str, dict]:
    """With stragglers: FedProx (their partial work kept, mu 0.1) against FedAvg (dropping them), seed by seed.
    Reproduced: at least 11 points above (half the paper's 22) by a gap the seeds resolve; direction only: above
    by a gap the seeds resolve; else not. The term's own part (FedProx against FedAvg keeping the same partial
    work, and both without stragglers) is reported beside it."""
    s, o = "optimizers-stragglers", "optimizers"
    drop, partial_, prox = (figure(r[s, n]) for n in ("fedavg-drop", "fedavg-partial", "fedprox-partial"))
    plain, prox_free, prox_one = (figure(r[o, n]) for n in ("fedavg", "fedprox", "fedprox-1"))
    bars = {
        "FedAvg, drops stragglers": drop,
        "FedAvg, keeps partial work": partial_,
        "FedProx mu 0.1, keeps partial work": prox,
        "FedAvg, no stragglers": plain,
        "FedProx mu 0.1, no stragglers": prox_free,
        "FedProx mu 1, no stragglers": prox_one,
    }
    gain = prox.minus(drop)
    measured = (
        f"with stragglers: FedProx {prox} vs FedAvg dropping them {drop}, paired {gain}; FedAvg keeping "
        f"partial work {partial_} (FedProx - it {prox.minus(partial_)}); without stragglers: FedAvg "
        f"{plain}, FedProx mu 0.1 {prox_free}, mu 1 {prox_one}"
    )
    if prox.above(drop):
        return measured, "reproduced" if gain.mean >= 0.11 else "direction only", bars
    return measured, "not reproduced", bars


def judge_scaffold(r: Results, w: str = "optimizers") -> tuple[str, str, dict]:
    """Reproduced: SCAFFOLD reaches the workload's SCAFFOLD_TARGET in fewer rounds than FedAvg on every seed and
    ends above it by a gap the seeds resolve; direction only: one of the two; else not."""
    target = SCAFFOLD_TARGET[w]
    runs = {n: r[w, n] for n in ("fedavg", "scaffold", "fedprox")}
    bars = {
        "FedAvg": figure(runs["fedavg"]),
        "SCAFFOLD": figure(runs["scaffold"]),
        "FedProx mu 0.1": figure(runs["fedprox"]),
    }
    to = {n: {s["seed"]: rounds_to(s, target) for s in seeds} for n, seeds in runs.items()}
    sooner = all(t is not None and (to["fedavg"][k] is None or t < to["fedavg"][k]) for k, t in to["scaffold"].items())
    rounds = ", ".join(f"{n} {mean_of(t)}" for n, t in to.items())
    measured = (
        f"final SCAFFOLD {bars['SCAFFOLD']} vs FedAvg {bars['FedAvg']} (paired "
        f"{bars['SCAFFOLD'].minus(bars['FedAvg'])}), FedProx {bars['FedProx mu 0.1']}; rounds to "
        f"{target:g}: {rounds}"
    )
    better = bars["SCAFFOLD"].above(bars["FedAvg"])
    return (
        measured,
        "reproduced" if sooner and better else "direction only" if sooner or better else "not reproduced",
        bars,
    )


def mean_of(values: dict[int, Optional[float]]) -> str:
    got = [v for v in values.values() if v is not None]
    return f"{np.mean(got):.1f} ({len(got)}/{len(values)})" if got else f"- (0/{len(values)})"


FEDOPT = {
    "fedavg": "FedAvg",
    "fedavgm": "FedAvgM",
    "fedadam": "FedAdam",
    "fedyogi": "FedYogi",
    "fedadagrad": "FedAdagrad",
}


def judge_fedopt(r: Results, w: str = "optimizers") -> tuple[str, str, dict]:
    """Reproduced: FedAdam and FedYogi each end above FedAvg by a gap the seeds resolve (paired); direction only:
    one of them does; else not. FedAvgM and FedAdagrad are shown beside them where the workload runs them."""
    bars = {label: figure(r[w, n]) for n, label in FEDOPT.items() if n in RUNS[w]}
    base = bars["FedAvg"]
    measured = (
        ", ".join(f"{k} {v}" for k, v in bars.items())
        + "; paired against FedAvg: "
        + ", ".join(f"{k} {v.minus(base)}" for k, v in bars.items() if k != "FedAvg")
    )
    wins = [bars[k].above(base) for k in ("FedAdam", "FedYogi")]
    return measured, "reproduced" if all(wins) else "direction only" if any(wins) else "not reproduced", bars


ROWS = {
    "heterofl": Row(
        "Diao, Ding, Tarokh, ICLR 2021",
        "a global model from a mix of widths nears the full model trained alone and beats the small one "
        "(CIFAR-10 PreResNet-18 IID, Flower's re-run: a 90.83, a-e 89.98, e 76.53 %)",
        "shapes 10, VGG-11, tiers 1/0.5/0.25",
        (("width", "heterofl"), ("width", "small-1"), ("width", "small-0.25")),
        judge_heterofl,
    ),
    "heterofl-160": Row(
        "Diao, Ding, Tarokh, ICLR 2021",
        "as above, trained four times as long",
        "shapes 10, VGG-11, tiers 1/0.5/0.25, 160 rounds",
        tuple(("width-160", n) for n in RUNS["width-160"]),
        partial(judge_heterofl, w="width-160"),
    ),
    "fjord": Row(
        "Horváth et al., NeurIPS 2021",
        "every width of the ordered family is close to a model trained at that width alone, and beats "
        "HeteroFL and Federated Dropout at each width (ResNet-18, CIFAR-10; figures not readable offline)",
        "shapes 10, VGG-11, tiers 1/0.5/0.25",
        (
            ("width", "fjord"),
            ("width", "heterofl"),
            ("width", "fd"),
            ("width", "small-0.25"),
            ("width", "small-0.5"),
            ("width", "small-1"),
        ),
        judge_fjord,
    ),
    "fedrolex": Row(
        "Alam et al., NeurIPS 2022",
        "rolling sub-model windows beat HeteroFL's fixed ones at the same widths (CIFAR-10/100; "
        "figures not readable offline)",
        "shapes 10, VGG-11, tiers 1/0.5/0.25",
        (("width", "fedrolex"), ("width", "heterofl")),
        judge_fedrolex,
    ),
    "fd": Row(
        "Caldas et al., arXiv 1812.07210, 2018",
        "Federated Dropout cuts local computation up to 1.7x (with compression, download 14x and upload 28x) "
        "without degrading the final model (EMNIST, CIFAR-10)",
        "shapes 10, VGG-11, every device at keep 0.75 / 0.5",
        (("width", "small-1"), ("width", "fd-0.75"), ("width", "fd-0.5")),
        judge_fd,
    ),
    "taskwise": Row(
        "Chen & Qin, SEC 2020",
        "up to 11.8x less computation per device at the central server's test accuracy (AlexNet and "
        "VGG on CIFAR-10, CIFAR-100, keyword spotting)",
        "shapes 10 and 100, AlexNet and VGG-11 (w0.25); kws_cnn on ten generated words; 10 devices",
        tuple((w, n) for w in TASKWISE_WORKLOADS for n in RUNS[w]),
        judge_taskwise,
    ),
    "taskwise-60": Row(
        "Chen & Qin, SEC 2020",
        "as above, the task-wise run trained three times as long",
        "shapes 10, AlexNet (w0.25), grouped, 60 rounds",
        (("alexnet-10", "central"), ("alexnet-10-60", "grouped")),
        partial(judge_taskwise, pairs=(("alexnet-10", "alexnet-10-60"),)),
    ),
    "fedbuff": Row(
        "Nguyen et al., AISTATS 2022",
        "buffered asynchronous aggregation is 3.3x more efficient than synchronous FL (and up to 2.5x than "
        "asynchronous FL)",
        "digits, cnn, 30 devices in three tiers, markov speed, 12 s deadline; 10 training at once, "
        "every 5 arrivals folded (benchmarks/async_vs_sync.py's FedAvg pair)",
        (("digits", "fedavg-sync"), ("digits", "fedavg-async")),
        judge_fedbuff,
    ),
    "fedprox": Row(
        "Li et al., MLSys 2020",
        "in highly heterogeneous settings FedProx improves absolute test accuracy by 22 % on average over "
        "FedAvg, which drops its stragglers (FedProx keeps their partial work, and its term mu keeps "
        "local models near the global one)",
        "digits, Dirichlet 0.1, 30 devices, 50 local steps; a 6 s deadline two thirds miss",
        (
            ("optimizers-stragglers", "fedavg-drop"),
            ("optimizers-stragglers", "fedavg-partial"),
            ("optimizers-stragglers", "fedprox-partial"),
            ("optimizers", "fedavg"),
            ("optimizers", "fedprox"),
            ("optimizers", "fedprox-1"),
        ),
        judge_fedprox,
    ),
    "scaffold": Row(
        "Karimireddy et al., ICML 2020",
        "control variates correct client drift: fewer rounds than FedAvg (and FedProx) on non-IID data "
        "with many local steps, unaffected by heterogeneity (EMNIST)",
        "digits, Dirichlet 0.1, 30 devices, 50 local steps",
        tuple(("optimizers", n) for n in ("fedavg", "scaffold", "fedprox")),
        judge_scaffold,
        curves=True,
    ),
    "fedopt": Row(
        "Reddi et al., ICLR 2021",
        "adaptive server optimizers (FedAdam, FedYogi, FedAdagrad) beat FedAvg on heterogeneous data "
        "(e.g. CIFAR-100 52.5 vs 44.7 %, Stack Overflow 67.1 vs 30.0 %)",
        "digits, Dirichlet 0.1, 30 devices, 50 local steps; the rules at their defaults, untuned",
        tuple(("optimizers", n) for n in ("fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad")),
        judge_fedopt,
    ),
    "scaffold-synthetic": Row(
        "Karimireddy et al., ICML 2020",
        "as above, on a harder workload",
        "synthetic 16 px, noise 4, Dirichlet 0.1, 30 devices, 50 local steps, 30 rounds",
        tuple(("optimizers-synthetic", n) for n in ("fedavg", "scaffold", "fedprox")),
        partial(judge_scaffold, w="optimizers-synthetic"),
        curves=True,
    ),
    "fedopt-synthetic": Row(
        "Reddi et al., ICLR 2021",
        "as above, on a harder workload",
        "synthetic 16 px, noise 4, Dirichlet 0.1, 30 devices, 50 local steps, 30 rounds",
        tuple(("optimizers-synthetic", n) for n in ("fedavg", "fedadam", "fedyogi")),
        partial(judge_fedopt, w="optimizers-synthetic"),
    ),
    "distreal": Row(
        "Rapp et al., AAAI 2022",
        "per-layer dropout chosen per mini-batch converges significantly faster than its baselines "
        "without losing final accuracy (no figure in the abstract)",
        "shapes 10, VGG-11 w0.25, 100 devices, markov speed, 8 s deadline (distreal_paper.py)",
        tuple(("distreal", n) for n in ("distreal", "fd", "heterofl", "fedavg-drop")),
        judge_distreal,
    ),
}
# --smoke-test: one seed, 2 rounds on few devices and samples, a scratch folder: the HeteroFL row, one task-wise run.
SMOKE = [
    "training.rounds=2",
    "devices.count=10",
    "devices.per_round=4",
    "model.norm_samples=64",
    "ray.num_workers=1",
    "training.eval_every=1",
]
SMOKE_SHAPES = ["data.train_samples=400", "data.test_samples=100"]
SMOKE_RUNS = (
    ("width", "heterofl"),
    ("width", "small-1"),
    ("width", "small-0.25"),
    ("alexnet-10", "by-task"),
    ("kws-10", "grouped"),
    ("optimizers", "scaffold"),
    ("optimizers", "fedadam"),
)
SMOKE_SPEECH = {"train": 200, "validation": 20, "test": 60}


def width_extra(widths: Sequence[float]) -> Optional[Callable[[Path], dict[str, Any]]]:
    """What a nested method's summary adds: its final model's accuracy at each width of its family."""
    if not widths:
        return None
    return lambda run_dir: {"widths": {str(k): v[0] for k, v in run_width_scores(run_dir, widths).items()}}


def table(rows: dict[str, Row], judged: dict[str, tuple[str, str, dict]], seeds: dict[str, int]) -> str:
    lines = [
        "| method | paper | its claim | workload here | measured here (seeds) | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        measured, verdict, _ = judged[name]
        count = f"{seeds[name]} seed{'s' * (seeds[name] > 1)}"
        provisional = "" if seeds[name] >= 3 else f" (provisional: {count})"
        lines.append(
            f"| {name} | {row.paper} | {row.claim} | {row.workload} | {measured} ({count}) | "
            f"**{verdict}**{provisional} |"
        )
    return "\n".join(lines) + "\n"


def runs_table(results: Results) -> str:
    lines = [
        "| workload | run | seeds | final accuracy | min device saving | GFLOPs | wall s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (w, n), seeds in results.items():
        saving = figure(seeds, lambda s: s.get("min_saving"))
        lines.append(
            f"| {w} | {n} | {len(seeds)} | {figure(seeds)} | "
            f"{f'{saving.mean:.2f}x' if saving.values else '-'} | "
            f"{figure(seeds, lambda s: s['total_flops']).mean / 1e9:.0f} | "
            f"{figure(seeds, lambda s: s['wall_seconds']).mean:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(name: str, bars: dict[str, Seeds], verdict: str, path: Path) -> None:
    """The row's figures, mean with the seeds' standard deviation: accuracy against width for figures named
    "<model> at <width>" (one line a model; any other figure a dashed level), else a bar per figure."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(bars) + 2), 4.2))
    lines: dict[str, dict[float, Seeds]] = {}
    for label, value in bars.items():
        model, _, width = label.rpartition(" at ")
        if model and width.replace(".", "", 1).isdigit():
            lines.setdefault(model, {})[float(width)] = value
    if lines:
        for i, (model, by_width) in enumerate(lines.items()):
            widths = sorted(by_width)
            ax.errorbar(
                widths,
                [by_width[w].mean for w in widths],
                yerr=[by_width[w].std for w in widths],
                marker="o",
                capsize=3,
                label=model,
                color=f"C{i}",
            )
        for j, (label, value) in enumerate((k, v) for k, v in bars.items() if " at " not in k):
            ax.axhline(value.mean, linestyle="--", color=f"C{len(lines) + j}", label=label)
        ax.set_xlabel("width (share of each layer's channels)")
        ax.legend(fontsize=8)
    else:
        labels = list(bars)
        ax.bar(
            range(len(bars)),
            [bars[k].mean for k in labels],
            yerr=[bars[k].std for k in labels],
            capsize=3,
            color=[f"C{i % 10}" for i in range(len(bars))],
        )
        ax.set_xticks(range(len(bars)), labels, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{name}: {verdict}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(name: str, runs: dict[str, list[dict]], verdict: str, path: Path) -> None:
    """Test accuracy against rounds, each run's mean over its seeds with their standard deviation shaded."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for i, (run, seeds) in enumerate(runs.items()):
        rounds = [c["round"] + 1 for c in seeds[0]["curve"]]
        accs = np.array([[c["test_accuracy"] for c in s["curve"]] for s in seeds], np.float64)
        ax.plot(rounds, accs.mean(0), marker=".", label=f"{run} ({len(seeds)} seeds)", color=f"C{i}")
        ax.fill_between(rounds, accs.mean(0) - accs.std(0), accs.mean(0) + accs.std(0), color=f"C{i}", alpha=0.2)
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{name}: {verdict}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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
    p.add_argument(
        "--smoke-test",
        action="store_true",
        help="the HeteroFL row and two task-wise runs (shapes, keywords), short, one seed, summaries "
        "under --out/results, whatever --only says; checks the config of every run --only asks for",
    )
    args = p.parse_args()
    rows = {n: ROWS[n] for n in (args.only or ROWS)}
    wanted = list(dict.fromkeys(r for row in rows.values() for r in row.runs if r[0] != "distreal"))
    seeds = 1 if args.smoke_test else args.seeds
    common = [
        "logging.progress=false",
        "logging.wandb.mode=disabled",
        "logging.checkpoint_every=0",
        *(SMOKE if args.smoke_test else []),
    ]
    results_root = args.out / "results" if args.smoke_test else args.results
    scratch = Path(tempfile.mkdtemp(prefix="fidelity-"))
    smoke_data = {
        "kws-10": [f"data.root={scratch / 'speech'}"],
        "digits": [],
        "optimizers": [],
        "optimizers-stragglers": [],
        "optimizers-synthetic": [],
    }  # kws: a small tree of its own

    def sets(w: str, n: str) -> list[str]:
        data = smoke_data.get(w, SMOKE_SHAPES) if args.smoke_test else []
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
        ray.init(
            address=os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, logging_level=logging.WARNING
        )
    try:
        for seed in range(seeds):  # seed by seed: a benchmark stopped early leaves whole seeds behind
            for w, n in todo:
                widths = RUNS[w][n][1]
                kept = one_run(
                    w,
                    WORKLOADS[w][0],
                    n,
                    seed,
                    sets(w, n),
                    results_root / w,
                    scratch,
                    run_missing=not args.table_only,
                    extra=width_extra(widths),
                    extra_tag=f"widths {' '.join(map(str, widths))}" if widths else "",
                )
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
    text = (
        "## The fidelity table\n\n"
        + table(measurable, judged, counts)
        + "\n## Every run (mean ± std over the seeds)\n\n"
        + runs_table(results)
    )
    (args.out / "fidelity.md").write_text(text)
    for name, (_, verdict, bars) in judged.items():
        path = args.out / f"fidelity_{name}.png"
        if rows[name].curves:
            plot_curves(name, {n: results[w, n] for w, n in rows[name].runs}, verdict, path)
        else:
            plot(name, bars, verdict, path)
    missing = sorted(set(rows) - set(measurable))
    print(text + (f"\nrows without all their runs yet: {', '.join(missing)}\n" if missing else ""))
    print(f"-> {args.out}/fidelity.md and a plot per row; summaries under {results_root}")


if __name__ == "__main__":
    main()
