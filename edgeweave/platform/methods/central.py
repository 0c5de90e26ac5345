"""Central training: one model on the union of all devices' data, the accuracy reference."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Params
from edgeweave.platform.methods.base import STRATEGIES, Job, Method, RoundPlan, Rules, ServerHalf
from edgeweave.platform.methods.context import ServerContext

if TYPE_CHECKING:
    from edgeweave.platform.config.schema import ExperimentConfig


class CentralRules(Rules):
    """No devices: one pooled job per round."""

    @classmethod
    def check(cls, params: Params, cfg: "ExperimentConfig") -> None:
        if cfg.aggregation.mode == "async":
            raise UserError(
                "aggregation.mode = 'async': strategy central trains the pooled data in one job per "
                "round, with no devices to run asynchronously; use aggregation.mode: sync"
            )
        rule = cfg.aggregation.server
        if rule.name != "plain" or rule.lr != 1.0:
            raise UserError(
                f"aggregation.server = {{name: {rule.name}, lr: {rule.lr:g}}}: strategy central is the "
                "plainly trained reference the other methods are judged against; leave the server rule "
                "out (plain, lr 1)"
            )
        if cfg.training.prox_mu:
            raise UserError(
                f"training.prox_mu = {cfg.training.prox_mu:g}: strategy central has no global model to "
                "stay near (one pooled job); set it to 0"
            )


class CentralServer(ServerHalf):
    """Each round is `training.local_epochs` epochs over every device's data pooled together."""

    def plan(self, round_: int, devices: np.ndarray, ctx: ServerContext) -> RoundPlan:
        return RoundPlan([Job(device=-1, pooled=True)])


STRATEGIES.add("central", Method(CentralRules, CentralServer))
