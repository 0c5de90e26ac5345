"""One Tune trial = one whole simulation with its own device workers, reporting every round."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import ray
from ray import tune

from edgeweave.actors.session import Prestarted, Simulation
from edgeweave.actors.shared_data import release_dataset, shared_dataset
from edgeweave.platform.config.schema import ExperimentConfig, build_config, dump_config
from edgeweave.platform.config.sweep import trial_raw
from edgeweave.platform.core.errors import RunFailed, last_line, lost
from edgeweave.platform.core.plugins import Plugin
from edgeweave.platform.data import load_dataset
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.checkpoint import load_checkpoint, run_fingerprint
from edgeweave.platform.run.experiment import run_rounds
from edgeweave.platform.run.phases import Phases
from edgeweave.platform.run.rundir import save_weights
from edgeweave.platform.run.server import check_with_data
from edgeweave.platform.run.sinks import default_sinks

RUNS = "runs"  # the sweep directory's folder of trial run directories, one per trial id
FAILED = "failed.txt"  # in a trial's run directory: the error an attempt of it raised


EVALUATED = ("test_accuracy", "test_loss")  # measured only after evaluated rounds (training.eval_every, the last)


class Reports:
    """Turns each round's metrics into Tune's report, which must hold the sweep's metric every time.

    Tune raises on a report without the metric. A round without an evaluation carries the
    test_accuracy and test_loss of the last evaluated round, with `evaluated: 0` (1 where the
    round evaluated); before the first evaluation they are NaN, which Tune takes (FIFO ignores
    it, ASHA's cutoffs skip it, and check_space puts every ASHA rung on an evaluated round).
    Any other value a round lacks (train_loss when no device finished) is NaN too.
    """

    def __init__(self, history: Sequence[dict[str, Any]] = ()) -> None:
        self.last = {k: math.nan for k in EVALUATED}
        for metrics in history:  # a resumed trial carries from the rounds before its checkpoint
            self._remember(metrics)

    def _remember(self, metrics: dict[str, Any]) -> None:
        self.last.update({k: metrics[k] for k in EVALUATED if metrics.get(k) is not None})

    def __call__(self, metrics: dict[str, Any]) -> dict[str, Any]:
        self._remember(metrics)
        numbers = {
            k: math.nan if v is None else v
            for k, v in metrics.items()
            if v is None or isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        return {**numbers, **self.last, "evaluated": int(metrics.get("test_accuracy") is not None)}


_KEPT: dict[tuple, Prestarted] = {}  # this trial process's driver and workers, kept for its next trial


def _processes_key(cfg: ExperimentConfig) -> tuple:
    """What a kept driver and workers must match to serve a trial: the trial's placement group (Tune gives a
    reused trial process its placement group too) and the workers' resources. Kept processes of another
    key are killed: they hold resources this trial cannot use."""
    group = ray.util.get_current_placement_group()
    key = (
        group.id.hex() if group is not None else None,
        cfg.ray.cpus_per_worker,
        cfg.ray.gpus_per_worker,
        cfg.ray.num_workers,
    )
    for other in [k for k in _KEPT if k != key]:
        _KEPT.pop(other).close()
    return key


def run_trial(
    params: dict[str, Any],
    base: dict,
    fixed: dict[str, Any],
    sweep_dir: str,
    plugins: Sequence[Plugin] = (),
    store: Any = None,
) -> None:
    """The function trainable: build the trial's config, run (or continue) it, report each round.

    Its run directory is `SWEEP_DIR/runs/TRIAL_ID`, in the sweep's own storage (shared storage
    on a multi-node cluster), not Tune's per-session working directory, so a resumed trial
    finds the metrics its first attempt wrote. `plugins` are the base's as the sweep read them (their
    source travels with the trial): a trial runs that code, not what the files hold by then. `store`,
    the sweep's DataStore, hands out its data set, shared with the trials that use it at the same time and
    given back when the trial ends, lost or not (without one, the trial loads it).
    Tune starts a trial again when its process or node was lost (`trial_retries`); it goes on from
    its last checkpoint; so does one that outlived its lost driver. A trial that raised otherwise was
    not lost: an attempt after it fails again at once.
    """
    # Tune starts trials in their own directory; configs name files relative to where the sweep began.
    os.chdir(os.environ.get("TUNE_ORIG_WORKING_DIR", os.getcwd()))
    run_dir = Path(sweep_dir) / RUNS / tune.get_context().get_trial_id()
    run_dir.mkdir(parents=True, exist_ok=True)
    marker = run_dir / FAILED
    if marker.is_file():  # Tune's retries are for lost processes; this trial's own error would come back
        raise RunFailed(marker.read_text())
    try:
        _run_trial(params, base, fixed, run_dir, plugins, store)
    except Exception as e:
        if not lost(e):  # a lost driver is a lost node the trial's process outlived for a moment: retried
            marker.write_text(last_line(e))
        raise
    finally:  # the trial is done with its data set, whatever happened
        if store is not None:
            release_dataset(store, run_dir.name)


def _run_trial(
    params: dict[str, Any], base: dict, fixed: dict[str, Any], run_dir: Path, plugins: Sequence[Plugin], store: Any
) -> None:
    phases = Phases()  # the trial's own timeline, from its start: `timeline.json` in its run directory
    cfg = build_config(trial_raw(base, {**fixed, "logging.out_dir": str(run_dir.parent)}, params), carried=plugins)
    (run_dir / "config.yaml").write_text(dump_config(cfg))  # before anything can fail: a failed trial keeps it
    with phases.phase("data load"):
        data_ref = None if store is None else shared_dataset(store, cfg, trial=run_dir.name)
        data = load_dataset(cfg.data, cfg.seed) if data_ref is None else ray.get(data_ref)
        check_with_data(cfg, data)  # a deadline no device meets, a model the data cannot feed: fails in one line
        partition = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed, data.owners)
    state = None
    checkpoint: Optional[tune.Checkpoint] = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as path:
            state = load_checkpoint(Path(path), run_fingerprint(cfg))
    reports = Reports(state.history if state is not None else ())
    last: list[tuple[dict[str, Any], Optional[Path]]] = []

    def on_round(metrics: dict[str, Any], saved: Optional[Path]) -> None:
        report = reports(metrics)
        if metrics["round"] + 1 == cfg.training.rounds:
            last.append((report, saved))  # reported once the run's files are written: Tune may stop it then
            return
        tune.report(report, checkpoint=tune.Checkpoint.from_directory(str(saved)) if saved else None)

    key = _processes_key(cfg)
    try:
        with Simulation(cfg, data, partition, data_ref=data_ref, phases=phases, prestarted=_KEPT.pop(key, None)) as sim:
            sinks = default_sinks(cfg, run_dir, start=state.next_round if state else 0)
            run_rounds(cfg, sim, sinks, run_dir, resume=state, on_round=on_round, phases=phases)
            save_weights(
                run_dir / "model.safetensors",
                build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed),
                sim.weights(),
            )
            _KEPT[key] = sim.keep()  # a trial that ends otherwise kills its processes
    finally:  # a trial that failed keeps its timeline too
        phases.save(run_dir)
    for report, saved in last:
        tune.report(report, checkpoint=tune.Checkpoint.from_directory(str(saved)) if saved else None)
