"""Run a sweep with Ray Tune (or continue one), then write its table, best config and plots."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, cast

import ray
import yaml
from ray import tune
from ray.air.integrations.wandb import WandbLoggerCallback
from ray.tune import TuneError
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from edgeweave.actors.connect import connect
from edgeweave.actors.shared_data import data_store
from edgeweave.platform.config.schema import ExperimentConfig, build_config, dump_config, read_yaml
from edgeweave.platform.config.sweep import SweepConfig, asha_rungs, check_space, grid_size, trial_raw
from edgeweave.platform.core.errors import RunFailed, UserError, last_line
from edgeweave.platform.report.sweep_results import ordered, plot_tradeoffs, write_table
from edgeweave.platform.run.sinks import wandb_mode, warn
from edgeweave.tune.console import LOG, Progress, console_to_log
from edgeweave.tune.space import param_space
from edgeweave.tune.trainable import FAILED, RUNS, run_trial

TRIALS = "trials"  # Tune's experiment directory inside the sweep directory


def trial_resources(sweep: SweepConfig, cfg: ExperimentConfig) -> tune.PlacementGroupFactory:
    """One bundle for the trial (its driver evaluates there) and one per device worker."""
    worker = {"CPU": cfg.ray.cpus_per_worker}
    if cfg.ray.gpus_per_worker:
        worker["GPU"] = cfg.ray.gpus_per_worker
    return tune.PlacementGroupFactory([{"CPU": 1.0}] + [dict(worker) for _ in range(sweep.workers_per_trial)])


def fixed_overrides(sweep: SweepConfig) -> dict[str, Any]:
    """What every trial sets besides the user's `set`: its workers, checkpoints, no bars.

    W&B is written by the sweep's driver (a Tune callback), not by the trial, so a trial that
    ASHA stops still leaves a complete W&B run.
    """
    return {
        **sweep.set,
        "ray.num_workers": sweep.workers_per_trial,
        "logging.progress": False,
        "logging.checkpoint_every": sweep.checkpoint_every,
        "logging.wandb.mode": "disabled",
    }


class WandbCallback(WandbLoggerCallback):
    """Tune's W&B callback, which also ends the W&B runs of trials Tune never ended.

    When Tune's own loop fails it stops the running trials without telling the callbacks, then
    Tune's callback waits its whole upload timeout (30 minutes) for their W&B runs to finish,
    which they never do: the sweep seemed to hang instead of failing.
    """

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        for trial in trials:  # ending a W&B run twice is harmless
            try:
                self.log_trial_end(trial, failed=trial.status == Trial.ERROR)
            except KeyError:  # its W&B run never started, or has finished and been collected
                pass
        super().on_experiment_end(trials, **info)


@contextmanager
def wandb_callbacks(sweep: SweepConfig, cfg: ExperimentConfig, out: Path) -> Iterator[list]:
    """One W&B run per trial (per-round metrics, the trial's parameters), grouped by the sweep.

    The mode is `wandb_mode` of the base config (a config's `disabled` stays off); it
    is put in the environment while the sweep runs, where Tune's callback reads it.
    """
    w = cfg.logging.wandb
    mode = wandb_mode(w)
    if mode == "disabled":
        yield []
        return
    before = os.environ.get("WANDB_MODE")
    os.environ["WANDB_MODE"] = mode
    try:
        yield [WandbCallback(project=w.project, group=sweep.name, entity=w.entity, mode=mode, dir=str(out))]
    finally:
        if before is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = before


def log_results_to_wandb(sweep: SweepConfig, cfg: ExperimentConfig, out: Path, trials: list[dict[str, Any]]) -> None:
    """The sweep's table and plots as one more W&B run of the group; trouble gives one warning."""
    w = cfg.logging.wandb
    mode = wandb_mode(w)
    if mode == "disabled":
        return
    try:
        import wandb

        run = wandb.init(
            project=w.project,
            entity=w.entity,
            group=sweep.name,
            name=f"{sweep.name}-results",
            job_type="sweep-results",
            dir=str(out),
            mode=mode,  # type: ignore[arg-type]  # wandb's Literal: WANDB_MODE passes through as wandb reads it
            reinit="finish_previous",
            settings=wandb.Settings(silent=True, console="off"),
        )
        keys = list(sweep.space)
        table = wandb.Table(
            columns=["trial", *keys, sweep.metric, "cumulative_flops", "virtual_time", "status"],
            data=[
                [
                    t["trial"],
                    *(str(t["params"][k]) for k in keys),
                    t.get(sweep.metric),
                    t.get("cumulative_flops"),
                    t.get("virtual_time"),
                    t["status"],
                ]
                for t in trials
            ],
        )
        images = {"tradeoffs": wandb.Image(str(out / "tradeoffs.png"))}
        for t in trials:
            plot = out / RUNS / str(t["trial_id"]) / "accuracy.png"
            if plot.is_file():
                images[f"trial_{t['trial']}_accuracy"] = wandb.Image(str(plot))
        run.log({"results": table, **images})
        run.finish()
    except Exception as e:  # noqa: BLE001 - logging never fails a sweep
        warn(f"W&B: the sweep's results were not logged ({type(e).__name__}: {e})")


def _trainable(sweep: SweepConfig, base: dict, cfg: ExperimentConfig, out: Path):
    """The trial function with what every trial shares: the base, the sweep's plugins, one data store."""
    return tune.with_resources(
        tune.with_parameters(
            run_trial,
            base=base,
            fixed=fixed_overrides(sweep),
            sweep_dir=str(out),
            plugins=cfg.loaded_plugins(),
            store=data_store(),
        ),
        trial_resources(sweep, cfg),
    )


def _tune_config(sweep: SweepConfig, rounds: int) -> tune.TuneConfig:
    s = sweep.scheduler
    scheduler = (
        ASHAScheduler(
            time_attr="training_iteration",
            max_t=rounds,
            grace_period=s.grace_period,
            reduction_factor=s.reduction_factor,
        )
        if s.name == "asha"
        else FIFOScheduler()
    )
    # reuse_actors: a trial's process is kept for the next trial (its imports and Ray set-up are paid once)
    return tune.TuneConfig(
        metric=sweep.metric,
        mode=sweep.mode,
        scheduler=scheduler,
        num_samples=sweep.num_samples,
        max_concurrent_trials=sweep.max_concurrent_trials,
        reuse_actors=True,
    )


def fit(tuner: tune.Tuner, out: Path) -> tune.ResultGrid:
    """Tuner.fit; a failure of Tune itself (not of a trial) is one line saying how to go on.

    A trial that raises does not get here: Tune records it as errored and the others go on.
    """
    try:
        return tuner.fit()
    except TuneError as e:
        cause = e.__cause__ or e
        what = last_line(cause).split(" Result: {")[0]  # Tune appends the whole offending result
        raise RunFailed(f"Ray Tune stopped ({what[:300]}); continue with: edgeweave sweep --resume {out}") from e


def run_sweep(sweep: SweepConfig, base: dict) -> bool:
    """Start a sweep in a fresh directory under `out_dir`; False if it was interrupted or a trial failed."""
    cfg = check_space(sweep, base)
    out = Path(sweep.out_dir).expanduser().resolve() / f"{sweep.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        out.mkdir(parents=True)
    except OSError as e:
        raise UserError(f"sweep out_dir = {sweep.out_dir!r}: cannot write there ({e.strerror})") from None
    # The sweep and its base travel with the results, so --resume needs nothing else.
    (out / "sweep.yaml").write_text(yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False))
    (out / "base.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    progress = Progress(sweep.name, grid_size(sweep), cfg.training.rounds, sweep.metric, sweep.mode, list(sweep.space))
    with quiet(out) as say:
        joined = not ray.is_initialized()  # started or attached here: shut down (or leave) at the end
        connect(cfg)
        try:
            with wandb_callbacks(sweep, cfg, out) as callbacks:
                tuner = tune.Tuner(
                    _trainable(sweep, base, cfg, out),
                    param_space=param_space(sweep),
                    tune_config=_tune_config(sweep, cfg.training.rounds),
                    run_config=tune.RunConfig(
                        name=TRIALS,
                        storage_path=str(out),
                        verbose=1,
                        callbacks=[*callbacks, progress],
                        # a trial whose node was lost goes on from its checkpoint;
                        # one that fails is recorded, the others go on
                        failure_config=tune.FailureConfig(max_failures=sweep.trial_retries),
                    ),
                )
                return finish(sweep, base, cfg, fit(tuner, out), out, say)
        finally:
            if joined:  # also stops Ray's forwarding of the cluster's output, before the console is back
                ray.shutdown()


def resume_sweep(sweep_dir: Path) -> bool:
    """Continue an interrupted sweep: unfinished and failed trials go on from their checkpoints; as run_sweep."""
    sweep_dir = sweep_dir.expanduser().resolve()
    if not (sweep_dir / "sweep.yaml").is_file() or not (sweep_dir / TRIALS).is_dir():
        raise UserError(f"--resume = {str(sweep_dir)!r}: not a sweep directory (no sweep.yaml and {TRIALS}/)")
    sweep = SweepConfig.model_validate(read_yaml(sweep_dir / "sweep.yaml"))
    base = read_yaml(sweep_dir / "base.yaml")
    cfg = check_space(sweep, base)
    for marker in (sweep_dir / RUNS).glob(f"*/{FAILED}"):  # the user may have fixed what failed
        marker.unlink()
    with quiet(sweep_dir) as say:
        joined = not ray.is_initialized()  # started or attached here: shut down (or leave) at the end
        connect(cfg)
        try:
            with wandb_callbacks(sweep, cfg, sweep_dir):  # the restored run config keeps its callbacks
                tuner = tune.Tuner.restore(
                    str(sweep_dir / TRIALS),
                    trainable=_trainable(sweep, base, cfg, sweep_dir),
                    resume_unfinished=True,
                    resume_errored=True,
                )
                return finish(sweep, base, cfg, fit(tuner, sweep_dir), sweep_dir, say)
        finally:
            if joined:  # also stops Ray's forwarding of the cluster's output, before the console is back
                ray.shutdown()


def _last(frame, column: str) -> Any:
    if frame is None or column not in frame:
        return None
    values = frame[column].dropna()
    return None if values.empty else values.iloc[-1].item()


@contextmanager
def quiet(out: Path) -> Iterator[Callable[[str], None]]:
    """The sweep's console (`console.Progress` lines), all other output of the process into `out/sweep.log`
    until Ray is shut down; yields `say`, whose lines are printed once the console is back (the table, the
    sweep's last lines)."""
    print(f"sweep progress below; Ray's, Tune's and W&B's output -> {out / LOG}", flush=True)
    lines: list[str] = []
    try:
        with console_to_log(out / LOG):
            yield lines.append
    finally:
        for line in lines:
            print(line, flush=True)


def finish(
    sweep: SweepConfig,
    base: dict,
    cfg: ExperimentConfig,
    grid: tune.ResultGrid,
    out: Path,
    say: Callable[[str], None] = print,
) -> bool:
    """results.csv / results.md (best first), best.yaml, tradeoffs.png; False if interrupted or a trial failed.

    A sweep was interrupted when trials never started, or one stopped at a round where neither
    its end nor the scheduler would have stopped it. A trial that raised is listed as failed
    (the table is still written); `--resume` runs it again.
    """
    keys = list(sweep.space)
    trials = []
    results = cast("Iterable[tune.Result]", grid)  # Ray's ResultGrid iterates by __getitem__ (no __iter__)
    for i, result in enumerate(results):
        if result.config is None:  # created, never started (an interrupted grid larger than the cluster)
            continue
        frame = result.metrics_dataframe
        rounds = _last(frame, "round")
        rounds = None if rounds is None else int(rounds) + 1
        params = {k: result.config[k] for k in keys}
        trial_cfg = build_config(trial_raw(base, sweep.set, params))
        status = (
            "failed"
            if result.error
            else "done"
            if rounds == trial_cfg.training.rounds
            else "stopped early"
            if rounds in asha_rungs(sweep.scheduler, trial_cfg.training.rounds)
            else "unfinished"
        )
        trials.append(
            {
                "trial": i,
                "params": params,
                **{c: _last(frame, c) for c in ("test_accuracy", "test_loss", "cumulative_flops", "virtual_time")},
                "rounds": rounds,
                "status": status,
                "trial_id": (result.metrics or {}).get("trial_id"),
                "config": trial_cfg,
                "error": last_line(result.error) if result.error else None,
                "path": result.path,
            }
        )
    finished = sum(t["status"] != "unfinished" for t in trials)
    if len(trials) < grid_size(sweep) or finished < len(trials):
        say(
            f"sweep {sweep.name}: interrupted with {finished} of {grid_size(sweep)} trials finished; "
            f"continue with: edgeweave sweep --resume {out}"
        )
        return False
    best_first = ordered(trials, sweep.metric, sweep.mode)
    md = write_table(best_first, keys, out)
    best = next((t for t in best_first if t.get(sweep.metric) is not None and t["status"] != "failed"), None)
    if best is not None:
        (out / "best.yaml").write_text(
            f"# best trial of sweep {sweep.name} by {sweep.metric} ({sweep.mode}): "
            f"{best['params']}\n" + dump_config(best["config"])
        )
    plot_tradeoffs(best_first, out, f"{sweep.name}: one point per trial")
    log_results_to_wandb(sweep, cfg, out, best_first)
    say(md)
    say(f"\nsweep {sweep.name}: {len(trials)} trials -> {out} (results.md, results.csv, best.yaml, tradeoffs.png)")
    failed = [t for t in trials if t["status"] == "failed"]
    for t in failed:
        say(
            f"sweep {sweep.name}: trial {t['trial']} {t['params']} failed: {t['error']} "
            f"(traceback: {Path(t['path']) / 'error.txt'})"
        )
    if failed:
        say(
            f"sweep {sweep.name}: {len(failed)} of {len(trials)} trials failed; run them again with: "
            f"edgeweave sweep --resume {out}"
        )
    return not failed
