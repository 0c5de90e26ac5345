"""The small model (HeteroFL's baseline, Diao et al., ICLR 2021): FedAvg on the one width every device can afford.

Every device trains the same nested sub-model, `rate` of each layer's channels (by default the smallest tier
rate in `rates`: what the weakest device gets under HeteroFL; `rate` overrides it). It starts as a model built at
that width (its layers' initial scale follows their own fan-in), and the channels outside it are held at zero, so
the global model is exactly the small model and is evaluated as one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, cast

import numpy as np
from pydantic import Field

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Params
from edgeweave.platform.methods.base import STRATEGIES, Job, Method, RoundPlan
from edgeweave.platform.methods.context import ServerContext
from edgeweave.platform.methods.width import WidthDevice, WidthParams, WidthRules, WidthServer
from edgeweave.platform.train.plans import nested, uniform_plan
from edgeweave.platform.train.task_plans import allowed_mask

if TYPE_CHECKING:
    from edgeweave.platform.config.schema import ExperimentConfig
    from edgeweave.platform.train.submodel import Slicer


class SmallParams(WidthParams):
    rate: Optional[float] = Field(None, gt=0, le=1)  # the width every device trains; null: the smallest tier rate


class SmallRules(WidthRules):
    """One nested width for every device, trained as HeteroFL trains its sub-models (static batch norm)."""

    params: SmallParams
    paper_norm = "static"

    @classmethod
    def check(cls, params: Params, cfg: "ExperimentConfig") -> None:
        params = cast(SmallParams, params)  # the config's strategy.params, validated as this method's
        if params.rate_by != "tier":
            raise UserError(
                f"strategy.rate_by = {params.rate_by!r}: `small` trains one width on every device; "
                "allowed: tier (set strategy.rate, or the tier rates whose smallest it takes)"
            )
        if params.rate is None:
            super().check(params, cfg)

    @property
    def rate(self) -> float:
        p = self.params
        return p.rate if p.rate is not None else min(p.rates[t.name] for t in self.cfg.devices.tiers)

    def channels(self, layer: int, width: int, rate: float, round_: int, device: int) -> np.ndarray:
        return nested(width, rate)

    def cheapest_job(self, slicer: "Slicer", batch: int, tier: str) -> tuple[int, float]:
        plan = uniform_plan(slicer, lambda i, w: nested(w, self.rate))
        return slicer.count(plan), float(slicer.flops(plan) * batch)


class SmallServer(WidthServer):
    """Every device at the one rate; the first plan zeroes the channels no device will train and scales the
    kept ones as a model built at that width would start."""

    rules: SmallRules
    _kept: Optional[np.ndarray] = None  # the small model's elements in the flat weights

    def plan(self, round_: int, devices: np.ndarray, ctx: ServerContext) -> RoundPlan:
        rate, slicer = self.rules.rate, ctx.facts.slicer
        plan = uniform_plan(slicer, lambda i, w: nested(w, rate))
        if self._kept is None:
            self._kept = allowed_mask(slicer, ctx.facts.model_size, [plan])
        kept, weights = self._kept, None
        if ctx.weights[~kept].any():  # a fresh model (a resumed or later round finds them zero already):
            # the small model starts as one built at its width, the rest at zero
            weights = np.where(kept, slicer.at_own_width(plan, ctx.weights), 0.0).astype(np.float32)
        return RoundPlan([Job(int(d), rate=rate) for d in devices], weights=weights)


STRATEGIES.add("small", Method(SmallRules, SmallServer, WidthDevice), SmallParams)
