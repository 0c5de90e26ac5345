"""The run loop, top to bottom: round after round, metrics to every sink, weights at the end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.sinks import Sinks


class RoundRunner(Protocol):
    """Runs one synchronous round and reports its metrics; the Ray driver is one."""

    def round(self, round_: int) -> dict[str, Any]: ...

    def weights(self) -> np.ndarray: ...


def run_rounds(cfg: ExperimentConfig, runner: RoundRunner, sinks: Sinks, run_dir: Path) -> dict[str, Any]:
    """Run every round, log each, and return the summary (final accuracy, loss, wall time)."""
    start = time.perf_counter()
    last: dict[str, Any] = {}
    for r in range(cfg.training.rounds):
        t0 = time.perf_counter()
        metrics = runner.round(r)
        metrics["wall_seconds"] = round(time.perf_counter() - t0, 4)
        sinks.log(metrics)
        last = metrics
    summary = {
        "name": cfg.name,
        "strategy": cfg.strategy.name,
        "rounds": cfg.training.rounds,
        "test_accuracy": last["test_accuracy"],
        "test_loss": last["test_loss"],
        "wall_seconds": round(time.perf_counter() - start, 2),
        "run_dir": str(run_dir),
    }
    sinks.close(summary)
    return summary
