"""Sweep files: a base experiment, a search space over any of its keys, and how to search it.

Plain data and validation, no Ray: `edgeweave/tune/` maps a checked sweep onto Ray Tune. Every
value a grid or choice can take, and both ends of every range, are built into a full
experiment config before anything starts, so a bad key or value fails with the usual one line.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeweave.platform.config.schema import (
    ExperimentConfig,
    build_config,
    read_yaml,
    set_key,
    with_input_paths,
    with_plugins,
)
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.plugins import load, resolve

KINDS = ("grid", "choice", "uniform", "loguniform", "randint")


class Dimension(BaseModel):
    """One swept key: exactly one of grid / choice (lists of values) or uniform / loguniform / randint ([low, high])."""

    model_config = ConfigDict(extra="forbid")
    grid: Optional[list[Any]] = None  # every listed value, each in its own trial
    choice: Optional[list[Any]] = None  # one of the listed values per trial, drawn
    uniform: Optional[tuple[float, float]] = None  # [low, high]: a number drawn uniformly
    loguniform: Optional[tuple[float, float]] = None  # [low, high], low > 0: drawn uniformly in log space
    randint: Optional[tuple[int, int]] = None  # [low, high): an integer drawn uniformly, high excluded

    @model_validator(mode="after")
    def _one_kind(self) -> "Dimension":
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(KINDS)}")
        values = getattr(self, given[0])
        if given[0] in ("grid", "choice") and not values:
            raise ValueError(f"{given[0]} needs at least one value")
        if given[0] not in ("grid", "choice") and not values[0] < values[1]:
            raise ValueError(f"{given[0]} needs [low, high] with low < high")
        if given[0] == "loguniform" and values[0] <= 0:
            raise ValueError("loguniform needs low > 0")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def values(self) -> list[Any]:
        return list(getattr(self, self.kind))

    def examples(self) -> list[Any]:
        """Values to check before the sweep starts: every listed value, or both ends of a range."""
        v = self.values
        if self.kind == "randint":  # Tune's randint excludes the upper bound
            return [v[0], v[1] - 1]
        return v


class Scheduler(BaseModel):
    """How trials are stopped: fifo runs every trial to its end, asha stops the worst at each rung."""

    model_config = ConfigDict(extra="forbid")
    name: Literal["fifo", "asha"] = "fifo"  # the scheduler
    grace_period: int = Field(1, ge=1)  # asha: rounds every trial runs before it can be stopped
    reduction_factor: float = Field(2.0, gt=1)  # asha: keep the best 1 / reduction_factor at each rung


class SweepConfig(BaseModel):
    """A sweep file: a base experiment, fixed overrides, a search space over its keys, how to search it."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("sweep", pattern=r"^[A-Za-z0-9_.-]+$")  # names the sweep's folder under out_dir
    base: str  # the experiment config every trial starts from
    set: dict[str, Any] = {}  # fixed overrides for every trial, e.g. training.rounds
    # dotted config key (as with --set; a whole section to switch its kind) -> the values it takes
    space: dict[str, Dimension]
    num_samples: int = Field(1, ge=1)  # repeats of the grid; draws of the random dimensions
    max_concurrent_trials: Optional[int] = Field(None, ge=1)  # null: as many as the CPUs allow
    scheduler: Scheduler = Scheduler()  # fifo, or asha with its rungs
    # what ranks trials: test_accuracy, test_loss, train_loss, virtual_time or cumulative_flops
    metric: str = "test_accuracy"
    mode: Literal["max", "min"] = "max"  # whether a larger metric is better
    checkpoint_every: int = Field(5, ge=1)  # rounds between a trial's checkpoints
    workers_per_trial: int = Field(1, ge=1)  # device workers each trial runs (one CPU bundle each)
    trial_retries: int = Field(3, ge=0)  # restarts of a trial, from its checkpoint, after its node or process was lost
    out_dir: str = "runs/sweeps"  # where the sweep's folder goes (relative: to the working directory)

    @field_validator("space")
    @classmethod
    def _not_empty(cls, v: dict[str, Dimension]) -> dict[str, Dimension]:
        if not v:
            raise ValueError("name at least one key to sweep")
        return v


METRICS = ("test_accuracy", "test_loss", "train_loss", "virtual_time", "cumulative_flops")


def trial_raw(base: dict, fixed: dict[str, Any], params: dict[str, Any]) -> dict:
    """The raw experiment config of one trial: the base, the fixed overrides, the trial's values."""
    raw = copy.deepcopy(base)
    for key, value in [*fixed.items(), *params.items()]:
        set_key(raw, key.split("."), copy.deepcopy(value), f"sweep key {key!r}")
    return raw


def load_sweep(path: str | Path, plugins: Sequence[str] = ()) -> tuple[SweepConfig, dict]:
    """Read and check a sweep file; returns it and the base experiment's raw config, whose plugins
    (its own, relative to it, then `plugins` from `--plugin`) are recorded as every trial finds them."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise UserError(f"sweep = {str(path)!r}: must be a mapping")
    try:
        sweep = SweepConfig.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-")) or "sweep"
        value = err.get("input")
        shown = "" if isinstance(value, dict) and err["type"] != "extra_forbidden" else f" = {value!r}"
        raise UserError(f"sweep {where}{shown}: {err['msg'].removeprefix('Value error, ')}") from None
    base = read_yaml(sweep.base)
    if not isinstance(base, dict):
        raise UserError(f"sweep base = {sweep.base!r}: must be an experiment config mapping")
    base = with_plugins(base, plugins)
    own = base.get("plugins") or []
    if not isinstance(own, list):
        raise UserError(f"plugins = {own!r}: must be a list of module names or .py paths")
    base["plugins"] = [p.spec for p in load(resolve(own, Path(sweep.base).parent))]  # their errors name them
    base = with_input_paths(base, Path(sweep.base).parent)  # its fronts and traces, found as build_config would
    if sweep.metric not in METRICS:
        raise UserError(f"sweep metric = {sweep.metric!r}: valid: {', '.join(METRICS)}")
    check_space(sweep, base)
    return sweep, base


ASHA_CHECKED = ("training.rounds", "training.eval_every")  # swept keys the rungs depend on


def check_space(sweep: SweepConfig, base: dict) -> ExperimentConfig:
    """Build a config for every example value of every key (the others at their first); returns the first.

    Under ASHA every trial must also run the same rounds and be evaluated at every rung.
    """
    first = {k: d.examples()[0] for k, d in sweep.space.items()}
    built = None
    for key, dim in sweep.space.items():
        if sweep.scheduler.name == "asha" and key in ASHA_CHECKED and dim.kind not in ("grid", "choice"):
            raise UserError(
                f"sweep space {key}: {dim.kind} under asha; give grid or choice values, so each "
                f"can be checked against the rungs"
            )
        for value in dim.examples():
            try:
                cfg = build_config(trial_raw(base, sweep.set, {**first, key: value}))
            except UserError as e:
                raise UserError(f"sweep space {key} = {value!r}: {e}") from None
            built = built or cfg
            if sweep.scheduler.name == "asha":
                check_rungs(sweep.scheduler, cfg, built.training.rounds, key, value)
    return built  # type: ignore[return-value]


def asha_rungs(scheduler: Scheduler, rounds: int) -> list[int]:
    """The rounds after which ASHA may stop a trial, as Ray's ASHA places them.

    A rung lies at grace_period * reduction_factor**k below `rounds` (Tune's max_t); Tune records
    a trial there at its first report at or past it, i.e. after round ceil(milestone) (one
    report per round, training_iteration = round + 1).
    """
    rungs, k = [], 0
    while scheduler.name == "asha" and (milestone := scheduler.grace_period * scheduler.reduction_factor**k) < rounds:
        rungs.append(math.ceil(milestone - 1e-9))
        k += 1
    return rungs


def check_rungs(scheduler: Scheduler, cfg: ExperimentConfig, rounds: int, key: str = "", value: Any = None) -> None:
    """ASHA compares trials by the metric after each rung's round: it must be an evaluated round.

    The driver evaluates the test set after every `training.eval_every`-th round and the last;
    a rung between evaluations would compare values from an older round (or none at all).
    """
    t, g, rf = cfg.training, scheduler.grace_period, scheduler.reduction_factor
    where = f"sweep space {key} = {value!r}: " if key in ASHA_CHECKED else "sweep "
    if t.rounds != rounds:
        raise UserError(
            f"{where}training.rounds = {t.rounds}, but another trial runs {rounds}; asha stops every "
            f"trial at one max_t, so set training.rounds once, in the sweep's `set`"
        )
    if g > t.rounds:
        raise UserError(f"sweep scheduler.grace_period = {g}: must be at most training.rounds ({t.rounds})")
    rungs = asha_rungs(scheduler, t.rounds)
    late = [r for r in rungs if r % t.eval_every]
    if late:
        grace = t.eval_every * math.ceil(g / t.eval_every)
        fix = (
            f"e.g. grace_period = {grace} with a whole reduction_factor"
            if grace < t.rounds
            else f"e.g. training.eval_every = 1, or a divisor of {math.gcd(*rungs)}"
        )
        raise UserError(
            f"{where}scheduler.grace_period = {g}, reduction_factor = {rf:g}: asha compares trials after "
            f"rounds {', '.join(map(str, rungs))}, but training.eval_every = {t.eval_every} evaluates "
            f"only after multiples of {t.eval_every} (and the last); every rung must be a multiple of "
            f"{t.eval_every}: {fix}"
        )


def grid_size(sweep: SweepConfig) -> int:
    """Trials the sweep will run: the grid's product times num_samples."""
    return sweep.num_samples * math.prod(len(d.values) for d in sweep.space.values() if d.kind == "grid")
