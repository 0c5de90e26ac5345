"""One Tune trial = one whole simulation with its own device workers, reporting every round."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from ray import tune

from edgeweave.actors.session import Simulation
from edgeweave.platform.checkpoint import fingerprint, load_checkpoint
from edgeweave.platform.config import build_config, dump_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.experiment import run_rounds
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import partition_data
from edgeweave.platform.rundir import save_weights
from edgeweave.platform.sinks import default_sinks
from edgeweave.platform.sweep import trial_raw

RUNS = "runs"  # the sweep directory's folder of trial run directories, one per trial id


def reported(metrics: dict[str, Any]) -> dict[str, Any]:
    """The round's numbers as Tune takes them (rounds without an evaluation leave the metric out)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def run_trial(params: dict[str, Any], base: dict, fixed: dict[str, Any], sweep_dir: str) -> None:
    """The function trainable: build the trial's config, run (or continue) it, report each round.

    Its run directory is `SWEEP_DIR/runs/TRIAL_ID`, in the sweep's own storage (shared storage
    on a multi-node cluster), not Tune's per-session working directory, so a resumed trial
    finds the metrics its first attempt wrote.
    """
    # Tune starts trials in their own directory; configs name files relative to where the sweep began.
    os.chdir(os.environ.get("TUNE_ORIG_WORKING_DIR", os.getcwd()))
    run_dir = Path(sweep_dir) / RUNS / tune.get_context().get_trial_id()
    cfg = build_config(trial_raw(base, {**fixed, "logging.out_dir": str(run_dir.parent)}, params))
    data = load_dataset(cfg.data, cfg.seed)
    partition = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    state = None
    checkpoint: Optional[tune.Checkpoint] = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as path:
            state = load_checkpoint(Path(path), fingerprint(dump_config(cfg)))

    last: list[tuple[dict[str, Any], Optional[Path]]] = []

    def on_round(metrics: dict[str, Any], saved: Optional[Path]) -> None:
        if metrics["round"] + 1 == cfg.training.rounds:
            last.append((metrics, saved))  # reported once the run's files are written: Tune may stop it then
            return
        tune.report(reported(metrics), checkpoint=tune.Checkpoint.from_directory(str(saved)) if saved else None)

    with Simulation(cfg, data, partition) as sim:
        sinks = default_sinks(cfg, run_dir, start=state.next_round if state else 0)
        run_rounds(cfg, sim, sinks, run_dir, resume=state, on_round=on_round)
        save_weights(run_dir / "model.safetensors", build_model(cfg.model, data.input_shape, data.num_classes,
                                                                cfg.seed), sim.weights())
    for metrics, saved in last:
        tune.report(reported(metrics), checkpoint=tune.Checkpoint.from_directory(str(saved)) if saved else None)
