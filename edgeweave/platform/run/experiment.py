"""The run loop, top to bottom: round after round, metrics to every sink, checkpoints, figures."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

import numpy as np

from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.core.errors import RunFailed
from edgeweave.platform.run.checkpoint import RunState, replace_durably, run_fingerprint, save_checkpoint
from edgeweave.platform.run.phases import Phases
from edgeweave.platform.run.plots import plot_accuracy, plot_devices
from edgeweave.platform.run.rundir import LOGS
from edgeweave.platform.run.sinks import JsonlSink, Sinks

CHECKPOINT = "checkpoint"  # the run directory's checkpoint, replaced every `logging.checkpoint_every` rounds


class RoundRunner(Protocol):
    """Runs one synchronous round and reports its metrics and device records; the Ray driver is one."""

    def round(self, round_: int) -> dict[str, Any]: ...

    def weights(self) -> np.ndarray: ...

    def snapshot(self, next_round: int, history: list[dict[str, Any]]) -> RunState: ...

    def restore(self, state: RunState) -> None: ...


def method_text(cfg: ExperimentConfig) -> str:
    """The method as the run trains it: its name, and the server rule and local term when they are not FedAvg's."""
    rule, prox = cfg.aggregation.server, cfg.training.prox_mu
    parts = [cfg.strategy.name]
    if rule.name != "plain" or rule.lr != 1.0:
        parts.append(f"server rule {rule.name} (lr {rule.lr:g})")
    if prox:
        parts.append(f"FedProx mu {prox:g}")
    return " + ".join(parts)


def _lower(cfg: ExperimentConfig) -> str:
    """What to lower when a run diverges: the local rate, and the server rule's when it is not plain averaging."""
    rule = cfg.aggregation.server
    server = "" if rule.name == "plain" and rule.lr == 1.0 else f" or aggregation.server.lr (now {rule.lr:g})"
    return f"lower training.lr (now {cfg.training.lr:g}){server}"


def _round_of(line: str) -> Optional[int]:
    try:
        return json.loads(line).get("round", -1)
    except ValueError:  # the torn last line of a killed run
        return None


def keep_rounds_before(path: Path, next_round: int) -> None:
    """Drop the lines of a JSONL log written by rounds a resumed run will redo (and a torn last line)."""
    if path.is_file():
        lines = [
            line for line in path.read_text().splitlines() if (r := _round_of(line)) is not None and r < next_round
        ]
        # written beside, synced and renamed: a kill or a power loss mid-write loses nothing
        replace_durably(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in lines)))


def _how_to_go_on(run_dir: Path, saved: Optional[int]) -> str:
    if saved is None:
        return "no checkpoint was written yet: start the run again"
    return f"the checkpoint from round {saved} is intact: edgeweave run --resume {run_dir}"


def _mean_staleness(history: list[dict[str, Any]]) -> dict[str, float]:
    """Async runs: the mean over server steps of their mean staleness (resumed steps included); else nothing."""
    values = [m["staleness_mean"] for m in history if m.get("staleness_mean") is not None]
    return {"staleness_mean": float(np.mean(values))} if values else {}


def run_rounds(
    cfg: ExperimentConfig,
    runner: RoundRunner,
    sinks: Sinks,
    run_dir: Path,
    resume: Optional[RunState] = None,
    on_round: Optional[Callable[[dict[str, Any], Optional[Path]], None]] = None,
    phases: Optional[Phases] = None,
    after_rounds: Optional[Callable[[], None]] = None,
) -> dict[str, Any]:
    """Run every round (from `resume` on), log each, checkpoint, draw the figures; return the summary.

    `on_round(metrics, checkpoint)` is called after each round, with the checkpoint directory
    when one was just written (a Tune trial reports through it). `phases`: where the first round,
    the rounds, evaluations, checkpoints, figures and the sinks' close are timed. `after_rounds()`
    is called once the last round is logged, before the figures are drawn (the command takes the
    final weights then and stops Ray while the figures are drawn).
    """
    phases = phases or Phases()
    start = time.perf_counter()
    began = phases.now()
    history: list[dict[str, Any]] = []
    first = 0
    if resume is not None:
        runner.restore(resume)
        history, first = list(resume.history), resume.next_round
    for log in LOGS:  # rounds from `first` on are (re)done: an earlier attempt's lines of them go
        keep_rounds_before(run_dir / log, first)
    devices_log = JsonlSink(run_dir / "devices.jsonl")
    every, stamp = cfg.logging.checkpoint_every, run_fingerprint(cfg)
    saved = first if resume is not None else None  # the round the last checkpoint goes on from
    diverged: Optional[str] = None  # what became NaN or infinite, when a round diverged
    try:
        for r in range(first, cfg.training.rounds):
            t0 = time.perf_counter()
            try:
                metrics = runner.round(r)
                diverged = metrics.pop("non_finite", None)
                if diverged is not None:
                    break
                for record in metrics.pop("device_records"):
                    devices_log.log(record)
                if (evaluation := metrics.pop("evaluation_seconds", None)) is not None:  # timed on the driver
                    phases.repeat("evaluations", evaluation)
                metrics["wall_seconds"] = round(time.perf_counter() - t0, 4)
                sinks.log(metrics)
                history.append(metrics)
                checkpoint = None
                if (every and (r + 1) % every == 0) or r + 1 == cfg.training.rounds:
                    t1 = time.perf_counter()
                    checkpoint = save_checkpoint(run_dir / CHECKPOINT, runner.snapshot(r + 1, history), stamp)
                    phases.repeat("checkpoints", time.perf_counter() - t1)
                    saved = r + 1
            except OSError as e:
                raise RunFailed(
                    f"round {r}: cannot write to {run_dir} ({e.strerror or e}); " + _how_to_go_on(run_dir, saved)
                ) from None
            except Exception as e:  # noqa: BLE001 - a lost driver or worker pool: say how to go on
                raise RunFailed(
                    f"round {r} failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                    + _how_to_go_on(run_dir, saved)
                ) from e
            if on_round is not None:
                on_round(metrics, checkpoint)
            if r == first:
                phases.add("first round", began, phases.now())
                began = phases.now()
        if diverged is not None:  # nothing of the diverged round is written; what was written stays
            raise RunFailed(
                f"round {r}: {diverged} became NaN or infinite, so the run stops here (rounds before it "
                f"are logged); {_lower(cfg)} or check the data, and start "
                "the run again"
            )
    except RunFailed as e:  # the progress bar, the files and the W&B run (marked failed) are closed
        devices_log.close({})
        sinks.close({"failed": str(e)})
        raise
    devices_log.close({})
    if cfg.training.rounds - first > 1:
        phases.add("rounds", began, phases.now())
    try:
        if after_rounds is not None:
            after_rounds()
        with phases.phase("plots"):
            for path in (
                plot_accuracy(history, run_dir / "accuracy.png", f"{cfg.name}: {cfg.strategy.name}"),
                plot_devices(cfg, history, run_dir / "devices.jsonl", run_dir / "devices.png"),
            ):
                sinks.image(path)
    except Exception as e:  # the final weights or a figure could not be written: the sinks close as failed
        sinks.close({"failed": f"{type(e).__name__}: {e}"})
        raise
    last = history[-1]
    summary = {
        "name": cfg.name,
        "strategy": cfg.strategy.name,
        "method": method_text(cfg),
        "rounds": cfg.training.rounds,
        "test_accuracy": last["test_accuracy"],
        "test_loss": last["test_loss"],
        "virtual_time": last["virtual_time"],
        "cumulative_flops": last["cumulative_flops"],
        "wall_seconds": round(time.perf_counter() - start, 2),
        **_mean_staleness(history),
        "run_dir": str(run_dir),
    }
    with phases.phase("sinks close"):
        sinks.close(summary)
    return summary
