"""A finished sweep's results: the trial table, the best config, accuracy against cost plots."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from edgeweave.platform.methods.front import non_dominated  # noqa: E402

COLUMNS = ("test_accuracy", "test_loss", "cumulative_flops", "virtual_time", "rounds", "status", "trial_id")


def ordered(trials: Sequence[dict[str, Any]], metric: str, mode: str) -> list[dict[str, Any]]:
    """Trials best first by the metric's last value; trials with no value last."""
    sign = -1.0 if mode == "max" else 1.0
    return sorted(trials, key=lambda t: (t.get(metric) is None, sign * (t.get(metric) or 0.0)))


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e4 or v == 0 else f"{v:.4f}"
    return str(v)


def write_table(trials: Sequence[dict[str, Any]], keys: Sequence[str], out: Path) -> str:
    """results.csv and results.md in `out` (trials already ordered); returns the Markdown."""
    header = ["trial", *keys, *COLUMNS]
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for t in trials:
            w.writerow([t["trial"], *(t["params"].get(k) for k in keys), *(t.get(c) for c in COLUMNS)])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| "
        + " | ".join([str(t["trial"]), *(str(t["params"].get(k)) for k in keys), *(_cell(t.get(c)) for c in COLUMNS)])
        + " |"
        for t in trials
    ]
    md = "\n".join(lines)
    (out / "results.md").write_text(md + "\n")
    return md


def plot_tradeoffs(trials: Sequence[dict[str, Any]], out: Path, title: str) -> Path:
    """Accuracy against total FLOPs and against virtual time, one point per trial, Pareto front marked."""
    done = [t for t in trials if t.get("test_accuracy") is not None]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, key, label in (
        (axes[0], "cumulative_flops", "total training FLOPs"),
        (axes[1], "virtual_time", "virtual time (s)"),
    ):
        pts = [t for t in done if t.get(key) is not None]
        if pts:
            cost = np.array([t[key] for t in pts], np.float64)
            acc = np.array([t["test_accuracy"] for t in pts], np.float64)
            front = non_dominated(cost, -acc)
            ax.scatter(cost, acc, color="tab:blue", s=28, label="trial")
            order = front[np.argsort(cost[front])]
            ax.plot(
                cost[order],
                acc[order],
                color="tab:red",
                marker="o",
                markerfacecolor="none",
                markersize=10,
                label="Pareto front",
            )
            for t, c, a in zip(pts, cost, acc):
                ax.annotate(str(t["trial"]), (c, a), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel("final test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path = out / "tradeoffs.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
