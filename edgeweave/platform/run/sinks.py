"""Where metrics go: console progress, JSONL, W&B. One small interface; only W&B imports wandb."""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from typing import IO, Any, Optional, Protocol, Sequence

from edgeweave.platform.config.schema import ExperimentConfig, WandbConfig
from edgeweave.platform.run.checkpoint import replace_durably

WANDB_ID = "wandb-id"  # the run directory's W&B run id, read back by a resumed run


class Sink(Protocol):
    def log(self, metrics: dict[str, Any]) -> None: ...

    def image(self, path: Path) -> None: ...

    def close(self, summary: dict[str, Any]) -> None:
        """The run ended: its summary, or {"failed": the reason} when it stopped with an error."""


class _NoImages:
    def image(self, path: Path) -> None:
        """Figures stay in the run directory; this sink does not carry them."""


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


class ConsoleSink(_NoImages):
    """A progress bar over rounds with the latest accuracy; the summary line at the end."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, start: int = 0) -> None:
        self.run_dir = run_dir
        self.unit = "step" if cfg.aggregation.mode == "async" else "round"
        self.bar = None
        if cfg.logging.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=cfg.training.rounds,
                initial=start,
                desc=cfg.name,
                unit=self.unit,
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def log(self, metrics: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if metrics.get("test_accuracy") is not None:
                shown = {"acc": f"{metrics['test_accuracy']:.4f}", "loss": f"{metrics['test_loss']:.3f}"}
                if metrics.get("staleness_mean") is not None:
                    shown["stale"] = f"{metrics['staleness_mean']:.2f}"
                self.bar.set_postfix(shown)

    def close(self, summary: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
        if "failed" in summary:  # the command prints the one line that says why
            return
        stale = f", mean staleness {summary['staleness_mean']:.2f}" if "staleness_mean" in summary else ""
        print(
            f"{summary['name']}: {summary.get('method', summary['strategy'])} finished {summary['rounds']} "
            f"{self.unit}s{stale}, "
            f"test accuracy {summary['test_accuracy']:.4f}, test loss {summary['test_loss']:.4f}, "
            f"virtual time {summary['virtual_time'] / 3600:.2f} h, {summary['cumulative_flops']:.3g} FLOPs, "
            f"{summary['wall_seconds']:.1f} s wall -> {self.run_dir}",
            flush=True,
        )


class JsonlSink(_NoImages):
    """metrics.jsonl: one JSON object per round, flushed as it is written.

    The file is created at once but opened for writing at the first line: a resumed run first
    drops the lines of the rounds it redoes (a rewrite and a rename), and a file opened earlier
    would be the old one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.touch()
        self.file: Optional[IO[str]] = None

    def log(self, metrics: dict[str, Any]) -> None:
        if self.file is None:
            self.file = open(self.path, "a", encoding="utf-8")
        self.file.write(json.dumps(metrics) + "\n")
        self.file.flush()

    def close(self, summary: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.close()


def wandb_mode(w: WandbConfig) -> str:
    """The W&B mode: WANDB_MODE overrides the config's, except that a config's `disabled` stays off.

    `disabled` is a decision (a sweep's trials, a benchmark, a user without W&B); `offline`
    is only the default, which WANDB_MODE=online (or =disabled) may change.
    """
    if w.mode == "disabled":
        return "disabled"
    return os.environ.get("WANDB_MODE") or w.mode


def wandb_run_id(run_dir: Path, start: int) -> tuple[str, bool]:
    """The run's W&B id and whether it continues an earlier W&B run.

    A fresh run (`start` 0) draws a new id and stores it in the run directory; a resumed run
    reads it back, so its rounds go on in the same W&B run.
    """
    path = run_dir / WANDB_ID
    if start > 0 and path.is_file() and (stored := path.read_text().strip()):
        return stored, True
    run_id = secrets.token_hex(6)  # like W&B's own ids: short, lower case, no `/ \\ # ? % :`
    replace_durably(path, lambda tmp: tmp.write_text(run_id + "\n"))
    return run_id, False


class WandbSink:
    """Streams metrics to Weights & Biases in the mode `wandb_mode` picks (offline by default).

    A resumed run (`start` > 0) continues the W&B run its first attempt began. Any W&B failure
    prints one warning and turns the sink off: logging never kills a run.
    """

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, start: int = 0) -> None:
        self.run = None
        w = cfg.logging.wandb
        mode = wandb_mode(w)
        if mode == "disabled":
            return
        try:
            import wandb

            run_id, resumed = wandb_run_id(run_dir, start)
            self.run = wandb.init(
                project=w.project,
                entity=w.entity,
                group=w.group,
                name=run_dir.name,
                id=run_id,
                resume="allow" if resumed else None,
                config=cfg.to_dict(),
                dir=str(run_dir),
                mode=mode,  # type: ignore[arg-type]  # wandb's Literal: WANDB_MODE passes through as wandb reads it
                reinit="finish_previous",
                settings=wandb.Settings(silent=True, console="off"),
            )
        except Exception as e:  # noqa: BLE001 - any W&B trouble must not stop the run
            self._fail(e)

    def _fail(self, e: Exception) -> None:
        warn(f"W&B logging is off for this run ({type(e).__name__}: {e})")
        self.run = None

    def log(self, metrics: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.log({k: v for k, v in metrics.items() if v is not None}, step=metrics["round"])
        except Exception as e:  # noqa: BLE001
            self._fail(e)

    def image(self, path: Path) -> None:
        if self.run is None:
            return
        try:
            import wandb

            self.run.log({path.stem: wandb.Image(str(path))}, commit=False)
        except Exception as e:  # noqa: BLE001
            self._fail(e)

    def close(self, summary: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.summary.update(summary)
            self.run.finish(exit_code=1 if "failed" in summary else 0)
        except Exception as e:  # noqa: BLE001
            self._fail(e)


class Sinks:
    """Fan-out to several sinks."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)

    def log(self, metrics: dict[str, Any]) -> None:
        for s in self.sinks:
            s.log(metrics)

    def image(self, path: Path) -> None:
        for s in self.sinks:
            s.image(path)

    def close(self, summary: dict[str, Any]) -> None:
        for s in self.sinks:
            s.close(summary)


def default_sinks(
    cfg: ExperimentConfig, run_dir: Path, extra: Optional[Sequence[Sink]] = None, start: int = 0
) -> Sinks:
    """Console progress, metrics.jsonl and W&B (`start`: the round a resumed run goes on from)."""
    return Sinks(
        [
            ConsoleSink(cfg, run_dir, start),
            JsonlSink(run_dir / "metrics.jsonl"),
            WandbSink(cfg, run_dir, start),
            *(extra or []),
        ]
    )
