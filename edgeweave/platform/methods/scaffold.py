"""SCAFFOLD (Karimireddy et al., ICML 2020): FedAvg whose devices correct their drift with control variates.

The server keeps a control variate c, each device its own c_i (zeros before its first round, kept in the
driver's device-state store). Every local step follows the loss gradient plus c - c_i. Afterwards the
device keeps c_i+ = the mean of the loss gradients it took: under plain local SGD this is the paper's
option II, c_i - c + (x - y) / (K lr), exactly; with momentum it is still the mean gradient, which
option II's formula no longer recovers. The server averages the models as FedAvg does (its update rule's
lr is the paper's eta_g) and moves c by the devices' changes summed over N = devices.count (the paper's
c + |S|/N mean(delta c_i)).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Params
from edgeweave.platform.methods.base import STRATEGIES, DeviceHalf, Job, Method, RoundPlan, Rules, ServerHalf
from edgeweave.platform.methods.context import DeviceContext, ServerContext
from edgeweave.platform.train.aggregate import Partial

if TYPE_CHECKING:
    from edgeweave.platform.config.schema import ExperimentConfig
    from edgeweave.platform.methods.context import Facts
    from edgeweave.platform.train.submodel import Slicer

CONTROL = "control"


class ScaffoldRules(Rules):
    """The full model, as FedAvg; each device keeps a control variate of the model's size."""

    @classmethod
    def check(cls, params: Params, cfg: "ExperimentConfig") -> None:
        if cfg.aggregation.mode == "async":
            raise UserError(
                "strategy.name = 'scaffold': needs aggregation.mode: sync; a device's correction uses "
                "the server's control variate as it started, and async steps keep the weights of past "
                "model versions but not that variate's"
            )

    def device_arrays(self, slicer: "Slicer") -> dict[str, int]:
        return {CONTROL: slicer.layout.size}

    def model_bytes(self, facts: "Facts", round_: int, job: Job) -> float:
        """The model and c down, the model and the change in c_i up: twice FedAvg's bytes each way."""
        return 2 * super().model_bytes(facts, round_, job)

    def term_flops(self, facts: "Facts", round_: int, job: Job) -> float:
        """Per mini-batch: the correction added to each gradient and the gradient added to the running mean,
        2 FLOPs per weight, beside any FedProx term."""
        return super().term_flops(facts, round_, job) + 2.0 * facts.model_size


class ScaffoldServer(ServerHalf):
    """Shares c with every round and moves it by what the round's devices changed in theirs."""

    def __init__(self, rules: Rules) -> None:
        super().__init__(rules)
        self.control: np.ndarray | None = None

    def plan(self, round_: int, devices: np.ndarray, ctx: ServerContext) -> RoundPlan:
        if self.control is None:
            self.control = np.zeros(ctx.facts.model_size, np.float32)
        return RoundPlan([Job(int(d)) for d in devices], shared=self.control.copy())

    def absorb(self, round_: int, changes: dict[int, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]) -> None:
        assert self.control is not None  # `plan` made c before any round's devices trained
        moved = np.zeros(len(self.control), np.float64)
        for before, after in changes.values():
            moved += after[CONTROL]
            if before:
                moved -= before[CONTROL]
        self.control = (self.control + moved / self.rules.cfg.devices.count).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {} if self.control is None else {CONTROL: self.control.copy()}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        if CONTROL in arrays:
            self.control = arrays[CONTROL].astype(np.float32)


class ScaffoldDevice(DeviceHalf):
    """Trains the full model along the corrected gradient and keeps its mean loss gradient as its c_i."""

    def train(self, ctx: DeviceContext, round_: int, job: Job, weights: np.ndarray, partial: Partial) -> None:
        own = ctx.state(job.device).get(CONTROL)
        correction = ctx.shared if own is None else ctx.shared - own
        gradient = ctx.train_full(round_, job, weights, partial, correction=correction)
        assert gradient is not None  # with a correction, training returns the mean loss gradient
        partial.keep(job.device, {CONTROL: gradient})


STRATEGIES.add("scaffold", Method(ScaffoldRules, ScaffoldServer, ScaffoldDevice))
