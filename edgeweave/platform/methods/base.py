"""A method is three small parts: its rules, a server half and a device half.

The rules are what both sides compute alike (a job's sub-model, its cost per mini-batch, how the
device picks each mini-batch, and so the device-round's timeline) from `Facts` alone. The server
half plans a round from a `ServerContext` and owns what a checkpoint must hold; the device half
trains a job through a `DeviceContext`. A method file registers the three with its parameters:

    STRATEGIES.add("name", Method(MyRules, MyServer, MyDevice), MyParams)

and the file's module name goes in `strategies/__init__.py`. Nothing here imports torch, so a
config is validated without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Optional

import numpy as np

from edgeweave.platform.core.registries import STRATEGIES as STRATEGIES
from edgeweave.platform.core.registry import Params
from edgeweave.platform.devices.timeline import DeviceTimeline, StepRule, fixed_rule
from edgeweave.platform.train.aggregate import Partial

if TYPE_CHECKING:
    from edgeweave.platform.config.schema import ExperimentConfig
    from edgeweave.platform.data import ArrayData
    from edgeweave.platform.methods.context import DeviceContext, Facts, ServerContext
    from edgeweave.platform.train.plans import Plan
    from edgeweave.platform.train.submodel import Slicer


@dataclass(frozen=True)
class Job:
    """One device's work from one model version (a sync round's, or an async device's own start); small, so a
    round's jobs cost nothing to send. The method's rules make it; the server then fills in `start` and `group`."""

    device: int
    pooled: bool = False  # train on the union of every device's data (the central reference)
    steps: Optional[int] = None  # mini-batches to do, when a deadline cuts the work short
    rate: float = 1.0  # share of each layer's channels the device trains (width methods)
    start: float = 0.0  # absolute virtual time it starts: the round's start, or an async device's own start
    group: Optional[int] = None  # jobs of one group train together in one batched pass (platform/train/batched.py)


@dataclass(frozen=True)
class RoundPlan:
    """What the server half decided for a round; the Server applies it."""

    jobs: list[Job]
    shared: Any = None  # what every worker needs this round beyond the weights (sent once per round)
    weights: Optional[np.ndarray] = field(default=None, repr=False)  # new global weights before the round


class Rules:
    """What both halves compute alike, from the facts every process shares."""

    paper_norm: ClassVar[str] = "running"  # `model.norm` when the config leaves it out: the paper's (README)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "step_flops" in vars(cls):  # renamed: an override under the old name would be silently ignored
            raise TypeError(
                f"{cls.__qualname__}.step_flops: renamed sample_flops (training FLOPs per sample of "
                "each mini-batch); rename the method"
            )

    def __init__(self, params: Params, cfg: "ExperimentConfig") -> None:
        self.params = params
        self.cfg = cfg

    @classmethod
    def check(cls, params: Params, cfg: "ExperimentConfig") -> None:
        """Raise a UserError when the parameters do not fit the rest of the config."""

    @classmethod
    def check_data(cls, params: Params, cfg: "ExperimentConfig", data: "ArrayData", slicer: "Slicer") -> None:
        """Raise a UserError when the parameters do not fit the loaded data (its shape, its classes)."""

    def receive(self, shared: Any) -> None:
        """Take the round's shared state (the server half's own, or as a worker received it)."""

    def job_plan(self, facts: "Facts", round_: int, job: Job) -> Optional["Plan"]:
        """The sub-model the job's device receives (None: the full model)."""
        return None

    def model_bytes(self, facts: "Facts", round_: int, job: Job) -> float:
        """Bytes the job moves each way: its (sub-)model's weights, none for the pooled central job."""
        if job.pooled:
            return 0.0
        plan = self.job_plan(facts, round_, job)
        return 4.0 * (facts.model_size if plan is None else facts.slicer.count(plan))

    def sample_flops(self, facts: "Facts", round_: int, job: Job, steps: int) -> np.ndarray:
        """Training FLOPs per sample of each of the job's `steps` mini-batches, from the real (sub-)model."""
        return np.full(steps, float(facts.slicer.flops(self.job_plan(facts, round_, job))), np.float64)

    def step_rule(self, facts: "Facts", round_: int, job: Job, steps: int) -> StepRule:
        """How the device picks each of its `steps` mini-batches as it trains. By default the plan it
        committed to at the round's start (`sample_flops`); DISTREAL chooses from moment to moment."""
        return fixed_rule(self.sample_flops(facts, round_, job, steps) * facts.batch_sizes(job, steps))

    def term_flops(self, facts: "Facts", round_: int, job: Job) -> float:
        """FLOPs the local objective's added term costs each mini-batch: FedProx's 3 per element of the job's
        (sub-)model (w - w_start, times mu, added to the gradient; `training.prox_mu`), else none."""
        if not self.cfg.training.prox_mu or job.pooled:
            return 0.0
        plan = self.job_plan(facts, round_, job)
        return 3.0 * (facts.model_size if plan is None else facts.slicer.count(plan))

    def device_round(self, facts: "Facts", round_: int, job: Job) -> DeviceTimeline:
        """The job's device-round as it plays out: the one computation behind the driver's clock and
        what the device trains. It starts from the full work, so both sides agree on any cut."""
        rule = self.step_rule(facts, round_, job, facts.full_steps(job))
        extra = self.term_flops(facts, round_, job)
        if extra:
            rule = with_term(rule, extra)
        return facts.timeline(round_, job, self.model_bytes(facts, round_, job), rule)

    def device_arrays(self, slicer: "Slicer") -> dict[str, int]:
        """The arrays each device keeps between rounds (name -> elements), held in the driver's store
        (platform/run/device_state.py): none by default; SCAFFOLD's control variate, a plugin's own."""
        return {}

    def cheapest_job(self, slicer: "Slicer", batch: int, tier: str) -> tuple[int, float]:
        """(weights moved each way, FLOPs of one mini-batch) of the least work a device of `tier`
        can take on with this method: the deadline check asks whether any tier can do this much."""
        return slicer.layout.size, float(slicer.flops(None) * batch)


def with_term(rule: StepRule, extra: float) -> StepRule:
    """`rule` with `extra` FLOPs added to each mini-batch it chooses (a local term's cost)."""

    def step(k: int, speed: float, left: Optional[float]) -> Optional[tuple[float, int]]:
        chosen = rule(k, speed, left)
        return None if chosen is None else (chosen[0] + extra, chosen[1])

    return step


class ServerHalf:
    """Plans each round and owns the method's part of a checkpoint."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def plan(self, round_: int, devices: np.ndarray, ctx: "ServerContext") -> RoundPlan:
        """The jobs of this round for the sampled, available devices (by default: each its full work)."""
        return RoundPlan([Job(int(d)) for d in devices])

    def absorb(self, round_: int, changes: dict[int, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]) -> None:
        """See the state the devices of a folded round (or async step) kept: device -> (before, after), in device
        order; `before` is empty for a device's first. Called once the update is folded in."""

    def state(self) -> dict[str, np.ndarray]:
        """What a checkpoint must hold for the run to go on identically (arrays only)."""
        return {}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Take back what `state` returned, when a run resumes."""


class DeviceHalf:
    """Trains one job from the global weights and adds its update to the worker's partial aggregate."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def train(self, ctx: "DeviceContext", round_: int, job: Job, weights: np.ndarray, partial: Partial) -> None:
        """The full model on the job's samples (FedAvg's device)."""
        ctx.train_full(round_, job, weights, partial)


@dataclass(frozen=True)
class Method:
    """A registered method: its rules and its two halves."""

    rules: type[Rules]
    server: type[ServerHalf] = ServerHalf
    device: type[DeviceHalf] = DeviceHalf


def method_halves(cfg: "ExperimentConfig") -> tuple[Rules, type[ServerHalf], type[DeviceHalf]]:
    """The config's method: its rules (built) and the classes of its two halves."""
    method, _ = STRATEGIES.entry(cfg.strategy.name, "strategy.name")
    return method.rules(cfg.strategy.params, cfg), method.server, method.device


def server_half(cfg: "ExperimentConfig") -> ServerHalf:
    """The config's method's server half (the driver's)."""
    rules, server, _ = method_halves(cfg)
    return server(rules)


def device_half(cfg: "ExperimentConfig") -> DeviceHalf:
    """The config's method's device half (each worker's)."""
    rules, _, device = method_halves(cfg)
    return device(rules)
