"""The design-space search's figure: every evaluated dropout vector and the Pareto front, cost against score."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_front(front, evaluated: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Every evaluated dropout vector (grey) and the Pareto front (red), cost against score."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if evaluated:
        ax.scatter(
            [e["flops_per_batch"] for e in evaluated],
            [e["score"] for e in evaluated],
            color="0.7",
            s=14,
            label="evaluated",
        )
    ax.plot(
        front.flops_per_batch, front.score, color="tab:red", marker="o", drawstyle="steps-post", label="Pareto front"
    )
    for v, f, sc in list(zip(front.vectors, front.flops_per_batch, front.score))[:: max(1, len(front.score) // 6)]:
        ax.annotate(
            "(" + ", ".join(f"{x:g}" for x in v) + ")", (f, sc), fontsize=7, xytext=(4, 4), textcoords="offset points"
        )
    ax.set_xlabel("training FLOPs per mini-batch")
    ax.set_ylabel("convergence score (validation loss, lower is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
