"""Server update rules: what the server does with a round's averaged update (Reddi et al., ICLR 2021).

The averaged update `delta = mean(new) - old`, per element over the devices that trained it, is a
pseudo-gradient (its negative). A rule turns it into the server's step: `plain` adds `lr * delta`
(FedAvg when lr is 1, FedBuff's server step in async mode); `momentum` keeps `v = beta1 v + delta` and
adds `lr * v` (FedAvgM, Hsu et al. 2019); the adaptive rules keep `m = beta1 m + (1 - beta1) delta` and
a second moment `v` (Adagrad: `v + delta^2`; Adam: `beta2 v + (1 - beta2) delta^2`; Yogi:
`v - (1 - beta2) delta^2 sign(v - delta^2)`), start `v` at tau^2 and add `lr * m / (sqrt(v) + tau)`,
without bias correction, as the paper's Algorithm 2.

Elements nobody trained this round (a sub-model's outer channels) take no step and keep their state.
Buffers (batch-norm statistics) are no gradient's: they take the mean. A rule's state is a few arrays
of the model's size, kept in the checkpoint. Nothing here imports torch.
"""

from __future__ import annotations

from typing import Optional, cast

import numpy as np
from pydantic import Field

from edgeweave.platform.core.registries import SERVER_RULES as SERVER_RULES
from edgeweave.platform.core.registry import Params


class PlainParams(Params):
    lr: float = Field(1.0, gt=0)  # the server's step along the averaged update (1: the average itself)


class MomentumParams(PlainParams):
    beta1: float = Field(0.9, ge=0, lt=1)  # momentum of the averaged updates


class AdaptiveParams(Params):
    lr: float = Field(0.01, gt=0)  # Reddi et al.'s best server rates lie between 10^-2.5 and 1 (their Table 8)
    beta1: float = Field(0.9, ge=0, lt=1)  # decay of the first moment m of the averaged updates; Reddi et al.: 0.9
    beta2: float = Field(0.99, ge=0, lt=1)  # decay of the second moment v; Reddi et al.: 0.99
    tau: float = Field(1e-3, gt=0)  # adaptivity: larger is closer to momentum SGD


class AdagradParams(Params):
    lr: float = Field(0.1, gt=0)  # the server's rate, inside Reddi et al.'s best range (10^-2.5 to 1)
    beta1: float = Field(0.9, ge=0, lt=1)  # decay of the first moment m of the averaged updates; Reddi et al.: 0.9
    tau: float = Field(1e-3, gt=0)  # adaptivity: larger is closer to momentum SGD


class ServerRule:
    """`plain`: weights + lr * delta on the trained elements."""

    def __init__(self, params: Params, learned: np.ndarray) -> None:
        self.params = params
        self.learned = learned  # bool mask of the elements that are parameters (not buffers)

    @property
    def averages(self) -> bool:
        """Whether a step is just the average (plain at lr 1): the server then keeps the average it computed."""
        return type(self) is ServerRule and cast(PlainParams, self.params).lr == 1.0

    def step(self, weights: np.ndarray, delta: np.ndarray, trained: np.ndarray) -> np.ndarray:
        """The new weights (float32) from the old ones and the averaged update (zero where nobody trained)."""
        move = self.direction(delta, trained & self.learned)
        out = weights + np.where(self.learned, move, delta)
        return out.astype(np.float32)

    def direction(self, delta: np.ndarray, trained: np.ndarray) -> np.ndarray:
        """The step on the parameters; updates the rule's state on the trained elements."""
        return cast(PlainParams, self.params).lr * delta  # plain's own step: every other rule overrides it

    def state(self) -> dict[str, np.ndarray]:
        return {}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Take back what `state` returned."""


class Momentum(ServerRule):
    params: MomentumParams

    def __init__(self, params: MomentumParams, learned: np.ndarray) -> None:
        super().__init__(params, learned)
        self.v = np.zeros(len(learned), np.float64)

    def direction(self, delta: np.ndarray, trained: np.ndarray) -> np.ndarray:
        np.copyto(self.v, self.params.beta1 * self.v + delta, where=trained)
        return np.where(trained, self.params.lr * self.v, 0.0)

    def state(self) -> dict[str, np.ndarray]:
        return {"v": self.v}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.v = arrays["v"].astype(np.float64)


class Adaptive(ServerRule):
    """Adam: the second moment an exponential mean of delta^2."""

    params: AdaptiveParams | AdagradParams

    def __init__(self, params: AdaptiveParams | AdagradParams, learned: np.ndarray) -> None:
        super().__init__(params, learned)
        self.m = np.zeros(len(learned), np.float64)
        self.v = np.full(len(learned), params.tau**2, np.float64)

    def second(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        p = cast(AdaptiveParams, self.params)  # adam's own: adagrad, whose parameters have no beta2, overrides it
        return p.beta2 * v + (1 - p.beta2) * d2

    def direction(self, delta: np.ndarray, trained: np.ndarray) -> np.ndarray:
        p = self.params
        np.copyto(self.m, p.beta1 * self.m + (1 - p.beta1) * delta, where=trained)
        np.copyto(self.v, self.second(self.v, delta * delta), where=trained)
        return np.where(trained, p.lr * self.m / (np.sqrt(self.v) + p.tau), 0.0)

    def state(self) -> dict[str, np.ndarray]:
        return {"m": self.m, "v": self.v}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.m, self.v = arrays["m"].astype(np.float64), arrays["v"].astype(np.float64)


class Yogi(Adaptive):
    params: AdaptiveParams

    def second(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return v - (1 - self.params.beta2) * d2 * np.sign(v - d2)


class Adagrad(Adaptive):
    params: AdagradParams

    def second(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return v + d2


SERVER_RULES.add("plain", ServerRule, PlainParams)
SERVER_RULES.add("momentum", Momentum, MomentumParams)
SERVER_RULES.add("adam", Adaptive, AdaptiveParams)
SERVER_RULES.add("yogi", Yogi, AdaptiveParams)
SERVER_RULES.add("adagrad", Adagrad, AdagradParams)


def build_rule(
    name: str, params: Params, learned: np.ndarray, state: Optional[dict[str, np.ndarray]] = None
) -> ServerRule:
    """The config's rule over a model whose parameter elements are `learned`."""
    rule = SERVER_RULES.build(name, params, learned=learned)
    if state:
        rule.load_state(state)
    return rule
