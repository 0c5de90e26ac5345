"""A sweep's console: one line whenever its trials change (done, running, stopped, failed, the best so
far); everything else the sweep's processes print (Tune's status tables, the W&B service, Ray's
forwarded worker output, their tracebacks) goes to the sweep's log file."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Optional

from ray.tune import Callback
from ray.tune.experiment import Trial

LOG = "sweep.log"  # in the sweep directory: what the console does not show
_console: Optional[IO[str]] = None  # the console while `console_to_log` holds the process's output


@contextmanager
def console_to_log(path: Path) -> Iterator[IO[str]]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so C++ and child output too) to
    `path`, appended; yields a stream to the console as it was, for the lines a person should see."""
    global _console
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    console = os.fdopen(os.dup(saved[2]), "w", buffering=1)
    with open(path, "a", buffering=1) as log:
        try:
            for fd in (1, 2):
                os.dup2(log.fileno(), fd)
            _console = console
            yield console
        finally:
            _console = None
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            console.close()


def _value(trial: Trial, metric: str) -> Optional[float]:
    value = (trial.last_result or {}).get(metric)
    return value if isinstance(value, (int, float)) else None


class Progress(Callback):
    """Prints a line to the console (`console_to_log`'s) each time a trial starts, ends, is stopped or
    fails: the counts, and the best value of the metric so far with that trial's parameters. It holds no
    stream itself: Tune keeps its callbacks with the sweep, and a resumed sweep gets this one back."""

    def __init__(self, name: str, total: int, rounds: int, metric: str, mode: str, keys: list[str]) -> None:
        self.name, self.total, self.rounds = name, total, rounds
        self.metric, self.mode, self.keys = metric, mode, keys
        self.last = ""

    def _line(self, trials: list[Trial], changed: Optional[Trial], now: Optional[str]) -> str:
        """`changed` has just become `now` (Tune sets its status after telling the callbacks)."""
        status = [now if t is changed else t.status for t in trials]
        ended = [t for t, s in zip(trials, status) if s == Trial.TERMINATED]
        stopped = sum((t.last_result or {}).get("training_iteration", self.rounds) < self.rounds for t in ended)
        parts = [f"{len(ended) - stopped} of {self.total} done", f"{status.count(Trial.RUNNING)} running"]
        if stopped:
            parts.append(f"{stopped} stopped early")
        if status.count(Trial.ERROR):
            parts.append(f"{status.count(Trial.ERROR)} failed")
        scored = [(v, t) for t in trials if (v := _value(t, self.metric)) is not None]
        if scored:
            v, t = (max if self.mode == "max" else min)(scored, key=lambda p: p[0])
            params = ", ".join(f"{k}={t.config.get(k)}" for k in self.keys)
            parts.append(f"best {self.metric} {v:.4f} ({params})")
        return f"sweep {self.name}: " + "; ".join(parts)

    def _show(self, trials: list[Trial], changed: Optional[Trial] = None, now: Optional[str] = None) -> None:
        line = self._line(trials, changed, now)
        if line != self.last and _console is not None:
            print(line, file=_console, flush=True)
            self.last = line

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._show(trials, trial, Trial.RUNNING)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._show(trials, trial, Trial.TERMINATED)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._show(trials, trial, Trial.ERROR)
