"""A strategy is a training method in two halves: the server plans a round, the client trains a job."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from edgeweave.platform.aggregate import Partial
from edgeweave.platform.devices.clock import batch_sizes
from edgeweave.platform.devices.timeline import StepRule, fixed_rule
from edgeweave.platform.registry import Params, Registry

if TYPE_CHECKING:
    from edgeweave.platform.client import Client
    from edgeweave.platform.config import ExperimentConfig
    from edgeweave.platform.data import ArrayData
    from edgeweave.platform.server import Server
    from edgeweave.platform.submodel import Plan, Slicer

STRATEGIES: Registry = Registry("strategy")


@dataclass(frozen=True)
class Job:
    """One device's work in one round; small, so a round's jobs cost nothing to send."""

    device: int
    pooled: bool = False  # train on the union of every device's data (the central reference)
    steps: Optional[int] = None  # mini-batches to do, when a deadline cuts the work short
    rate: float = 1.0  # share of each layer's channels the device trains (width methods)
    start: float = 0.0  # virtual time the round started (devices that plan for themselves read it)


class Strategy(ABC):
    """Base of every method; subclasses register with @STRATEGIES.register(name, Params)."""

    def __init__(self, params: Params, cfg: "ExperimentConfig") -> None:
        self.params = params
        self.cfg = cfg

    @classmethod
    def check(cls, params: Params, cfg: "ExperimentConfig") -> None:
        """Raise a UserError when the parameters do not fit the rest of the config."""

    @classmethod
    def check_data(cls, params: Params, cfg: "ExperimentConfig", data: "ArrayData") -> None:
        """Raise a UserError when the parameters do not fit the loaded data (its shape, its classes)."""

    def plan(self, round_: int, devices: np.ndarray, server: "Server") -> list[Job]:
        """Server half: the jobs of this round for the sampled, available devices."""
        return [Job(int(d)) for d in devices]

    def shared_state(self) -> Any:
        """Server half: what every worker needs this round beyond the weights (None: nothing)."""
        return None

    def receive_state(self, state: Any) -> None:
        """Client half: take the round's shared state (sent once per round, not per device)."""

    def state(self) -> dict[str, np.ndarray]:
        """Server half: what a checkpoint must hold for the run to go on identically (arrays only)."""
        return {}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Server half: take back what `state` returned, when a run resumes."""

    def job_plan(self, server: "Server", round_: int, job: Job) -> Optional["Plan"]:
        """The sub-model a job trains (None: the full model); sets the bytes it moves."""
        return None

    def flops_per_sample(self, server: "Server", round_: int, job: Job) -> float:
        """Training FLOPs per sample of the job, from the real (sub-)model."""
        return float(server.plan_flops(self.job_plan(server, round_, job)))

    def cheapest_job(self, slicer: "Slicer", batch: int, tier: str) -> tuple[int, float]:
        """(weights moved each way, FLOPs of one mini-batch) of the least work a device of `tier`
        can take on with this method: the deadline check asks whether any tier can do this much."""
        return slicer.layout.size, float(slicer.flops(None) * batch)

    def step_flops(self, server: "Server", round_: int, job: Job, steps: int) -> np.ndarray:
        """Training FLOPs per sample of each of the job's `steps` mini-batches (methods whose
        sub-model changes per mini-batch override this; the clock cuts work step by step)."""
        return np.full(steps, self.flops_per_sample(server, round_, job), np.float64)

    def step_rule(self, server: "Server", round_: int, job: Job, steps: int) -> StepRule:
        """How the device picks each of its `steps` mini-batches as it trains. By default the plan it
        committed to at the round's start (`step_flops`); DISTREAL chooses from moment to moment."""
        sizes = batch_sizes(server.samples_of(job), self.cfg.training.batch_size, steps)
        return fixed_rule(self.step_flops(server, round_, job, steps) * sizes)

    @abstractmethod
    def client_update(
        self, client: "Client", round_: int, job: Job, global_weights: np.ndarray, partial: Partial
    ) -> None:
        """Client half: train `job` starting from `global_weights` and add its update to `partial`."""
