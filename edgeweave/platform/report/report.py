"""Compare finished runs: accuracy against virtual time in one plot, and a table of the key figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from edgeweave.platform.config.schema import read_yaml  # noqa: E402
from edgeweave.platform.core.errors import UserError  # noqa: E402
from edgeweave.platform.report.savings import device_savings  # noqa: E402
from edgeweave.platform.run.plots import time_axis  # noqa: E402


def read_run(run_dir: Path) -> dict[str, Any]:
    """A run directory's config and per-round metrics."""
    metrics_file = run_dir / "metrics.jsonl"
    if not metrics_file.is_file():
        raise UserError(f"run = {str(run_dir)!r}: no metrics.jsonl there; is it a run directory?")
    cfg = read_yaml(run_dir / "config.yaml") if (run_dir / "config.yaml").is_file() else {}
    metrics = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    if not metrics:
        raise UserError(f"run = {str(run_dir)!r}: metrics.jsonl is empty")
    devices_file = run_dir / "devices.jsonl"
    agg = cfg.get("aggregation") or {}
    strategy = cfg.get("strategy", {}).get("name", "?")
    if agg.get("mode") == "async":  # side by side with sync runs of the same method
        strategy += ", async" + (f" (buffer {agg['buffer']})" if agg.get("buffer") else "")
    return {
        "dir": run_dir,
        "name": cfg.get("name", run_dir.name),
        "strategy": strategy,
        "asynchronous": agg.get("mode") == "async",
        "metrics": metrics,
        "devices": device_savings(devices_file) if devices_file.is_file() else [],
    }


def summarise(run: dict[str, Any], target: float, reference: Optional[float] = None) -> dict[str, Any]:
    """A run's key figures; `reference` is the accuracy of the run it is judged against (central)."""
    savings = [d["saving"] for d in run["devices"]]
    evaluated = [m for m in run["metrics"] if m.get("test_accuracy") is not None]
    reached = next((m for m in evaluated if m["test_accuracy"] >= target), None)
    last = run["metrics"][-1]
    return {
        "run": run["dir"].name,
        "strategy": run["strategy"],
        "final_accuracy": evaluated[-1]["test_accuracy"] if evaluated else None,
        "best_accuracy": max((m["test_accuracy"] for m in evaluated), default=None),
        "time_to_target": reached.get("virtual_time") if reached else None,
        "virtual_time": last.get("virtual_time"),
        "total_flops": last.get("cumulative_flops"),
        "rounds": len(run["metrics"]),
        "min_saving": min(savings, default=None),
        "mean_saving": sum(savings) / len(savings) if savings else None,
        "vs_reference": evaluated[-1]["test_accuracy"] - reference if evaluated and reference is not None else None,
    }


def table(rows: Sequence[dict[str, Any]], target: float) -> str:
    """A Markdown table, fastest to the target first (runs that never reach it last)."""

    def fmt(x: Optional[float], spec: str) -> str:
        return "-" if x is None else format(x, spec)

    ordered = sorted(rows, key=lambda r: (r["time_to_target"] is None, r["time_to_target"] or 0.0))
    lines = [
        f"| run | strategy | final accuracy | best accuracy | virtual time to {target:g} (s) | "
        "virtual time (s) | total FLOPs | device saving (min / mean) | accuracy vs reference |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ordered:
        lines.append(
            f"| {r['run']} | {r['strategy']} | {fmt(r['final_accuracy'], '.4f')} | "
            f"{fmt(r['best_accuracy'], '.4f')} | {fmt(r['time_to_target'], '.0f')} | "
            f"{fmt(r['virtual_time'], '.0f')} | {fmt(r['total_flops'], '.3g')} | "
            f"{fmt(r['min_saving'], '.2f')} / {fmt(r['mean_saving'], '.2f')} | "
            f"{fmt(r['vs_reference'], '+.4f')} |"
        )
    return "\n".join(lines)


def plot(runs: Sequence[dict[str, Any]], path: Path, target: float) -> Path:
    span = max(r["metrics"][-1].get("virtual_time") or 0.0 for r in runs)
    scale, unit = time_axis(span)
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for r in runs:
        pts = [m for m in r["metrics"] if m.get("test_accuracy") is not None and m.get("virtual_time") is not None]
        ax.plot(
            [m["virtual_time"] / scale for m in pts],
            [m["test_accuracy"] for m in pts],
            linestyle="--" if r.get("asynchronous") else "-",
            label=f"{r['name']} ({r['strategy']})",
        )
    ax.axhline(target, color="0.5", linestyle="--", linewidth=1, label=f"target {target:g}")
    ax.set_xlabel(f"virtual time ({unit})")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
