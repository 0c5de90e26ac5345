"""The run loop, top to bottom: round after round, metrics to every sink, figures at the end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.plots import plot_accuracy, plot_devices
from edgeweave.platform.sinks import JsonlSink, Sinks


class RoundRunner(Protocol):
    """Runs one synchronous round and reports its metrics and device records; the Ray driver is one."""

    def round(self, round_: int) -> dict[str, Any]: ...

    def weights(self) -> np.ndarray: ...


def run_rounds(cfg: ExperimentConfig, runner: RoundRunner, sinks: Sinks, run_dir: Path) -> dict[str, Any]:
    """Run every round, log each, draw the figures, and return the summary."""
    start = time.perf_counter()
    history: list[dict[str, Any]] = []
    devices_log = JsonlSink(run_dir / "devices.jsonl")
    for r in range(cfg.training.rounds):
        t0 = time.perf_counter()
        metrics = runner.round(r)
        for record in metrics.pop("device_records"):
            devices_log.log(record)
        metrics["wall_seconds"] = round(time.perf_counter() - t0, 4)
        sinks.log(metrics)
        history.append(metrics)
    devices_log.close({})
    last = history[-1]
    for path in (plot_accuracy(history, run_dir / "accuracy.png", f"{cfg.name}: {cfg.strategy.name}"),
                 plot_devices(cfg, history, run_dir / "devices.jsonl", run_dir / "devices.png")):
        sinks.image(path)
    summary = {
        "name": cfg.name,
        "strategy": cfg.strategy.name,
        "rounds": cfg.training.rounds,
        "test_accuracy": last["test_accuracy"],
        "test_loss": last["test_loss"],
        "virtual_time": last["virtual_time"],
        "cumulative_flops": last["cumulative_flops"],
        "wall_seconds": round(time.perf_counter() - start, 2),
        "run_dir": str(run_dir),
    }
    sinks.close(summary)
    return summary
