"""DISTREAL's design-space exploration: NSGA-II over per-layer dropout vectors on a grid.

Objective one is the exact training FLOPs of a mini-batch; objective two the convergence
score: the validation loss after a short fixed number of mini-batches from the model's fixed
initial weights (or the weights after a few FedAvg rounds), on a held-out part of the training
data, averaged over a few seeds, trained and evaluated as the run will: the same batch-norm policy
(`model.norm`, its statistics recomputed before evaluation under `static`) and the same scaling of
kept filters. The front is the non-dominated set of every vector evaluated, repeatable from the
config's seed. It records what it was made for (model and parameters, the policy included, input
shape, classes, batch size), which runs check.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

import numpy as np
import torch

from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.core.seeding import SERVER, Stream, rng, torch_generator
from edgeweave.platform.data import ArrayData
from edgeweave.platform.methods.front import Front, made_for, non_dominated, normalises
from edgeweave.platform.models import build_model
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.models.norm import recompute_statistics, statistics_rows
from edgeweave.platform.run.checkpoint import rename_durably
from edgeweave.platform.train.plans import dropout_plan
from edgeweave.platform.train.sgd import SGDSettings
from edgeweave.platform.train.sliced_training import SubModels, train_per_batch
from edgeweave.platform.train.submodel import Slicer
from edgeweave.platform.train.training import evaluate

if TYPE_CHECKING:
    from edgeweave.platform.methods.distreal import DistrealParams


class Explorer:
    """Scores dropout vectors for one config's model and data; caches every evaluation."""

    def __init__(self, cfg: ExperimentConfig, data: ArrayData) -> None:
        p = cast("DistrealParams", cfg.strategy.params)  # a distreal config (`edgeweave dse` checks)
        self.cfg, self.p = cfg, p
        self.model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
        self.slicer = Slicer(self.model, data.input_shape)
        self.layout = FlatLayout(self.model)
        self.made_for = {**made_for(cfg, data.input_shape, data.num_classes), "batch_norm": normalises(self.model)}
        self.start = warm_start(cfg, data, p.dse_warm_rounds) if p.dse_warm_rounds else self.layout.flatten(self.model)
        self.norm = getattr(cfg.model.params, "norm", None)
        self.models = SubModels(self.slicer, norm=self.norm)
        order = rng(cfg.seed, -1, SERVER, Stream.DSE_HOLD_OUT).permutation(len(data.y_train))
        n_val = max(1, int(len(order) * p.held_out))
        val, train = order[:n_val], order[n_val:]
        self.x_train, self.y_train = torch.from_numpy(data.x_train[train]), torch.from_numpy(data.y_train[train])
        self.x_val, self.y_val = data.x_train[val], data.y_train[val]
        count = getattr(cfg.model.params, "norm_samples", len(train))  # `static`: the statistics' rows, as a run's
        self.x_statistics = data.x_train[statistics_rows(cfg.seed, train, count)]
        self.grid = np.round(np.arange(0.0, p.grid_max + 1e-9, p.grid_step), 6)
        t = cfg.training
        self.settings = SGDSettings(t.lr, t.momentum, t.weight_decay, t.batch_size, steps=p.dse_steps)
        self.cache: dict[tuple[float, ...], tuple[float, float]] = {}
        self.seed_scores: dict[tuple[float, ...], list[float]] = {}  # each vector's score per seed

    @property
    def layers(self) -> int:
        return self.slicer.num_convs

    def cost(self, vector: tuple[float, ...]) -> float:
        """Exact training FLOPs of one mini-batch with this dropout vector."""
        plan = dropout_plan(self.slicer, vector, np.random.default_rng(0))
        return float(self.slicer.flops(plan) * self.cfg.training.batch_size)

    def score(self, vector: tuple[float, ...]) -> float:
        """Mean validation loss after the fixed training budget, over the configured seeds."""
        losses = [self.seed_score(vector, s) for s in range(self.p.dse_seeds)]
        self.seed_scores[tuple(float(v) for v in vector)] = losses
        return float(np.mean(losses))

    def seed_score(self, vector: tuple[float, ...], seed: int) -> float:
        """Validation loss after `dse_steps` mini-batches with this vector, from the start weights, with the
        draws of score seed `seed`, evaluated as the run evaluates its global model (`Server.evaluate`)."""
        weights = torch.from_numpy(self.start.copy())
        gens = [rng(self.cfg.seed, seed, SERVER, Stream.DSE_DROPOUT, k) for k in range(self.p.dse_steps)]
        train_per_batch(
            self.models,
            weights,
            self.x_train,
            self.y_train,
            self.settings,
            torch_generator(self.cfg.seed, seed, SERVER, Stream.DSE_BATCHES),
            lambda k: dropout_plan(self.slicer, vector, gens[k]),
            scale_kept=self.p.scale_kept,
        )
        self.layout.load(self.model, weights.numpy())
        if self.norm == "static":
            recompute_statistics(self.model, self.x_statistics, self.cfg.training.eval_batch_size)
        return evaluate(self.model, self.x_val, self.y_val)[1]

    def evaluate(self, vector: tuple[float, ...]) -> tuple[float, float]:
        key = tuple(float(v) for v in vector)
        if key not in self.cache:
            self.cache[key] = (self.cost(key), self.score(key))
        return self.cache[key]

    def front(self) -> tuple[Front, list[dict[str, Any]]]:
        """The non-dominated set of everything evaluated so far, and all evaluated points."""
        keys = list(self.cache)
        cost = np.array([self.cache[k][0] for k in keys])
        score = np.array([self.cache[k][1] for k in keys])
        best = non_dominated(cost, score)
        meta = {
            **self.made_for,
            "data": self.cfg.data.name,
            "layers": self.layers,
            "seed": self.cfg.seed,
            "grid": self.grid.tolist(),
            "scale_kept": self.p.scale_kept,
            "score": f"validation loss after {self.p.dse_steps} mini-batches, mean of {self.p.dse_seeds} seeds, "
            + (
                f"from the weights after {self.p.dse_warm_rounds} FedAvg rounds"
                if self.p.dse_warm_rounds
                else "from the initial weights"
            )
            + (", kept filters scaled by 1/(1-d)" if self.p.scale_kept else "")
            + f", batch norm {self.norm}",
        }
        evaluated = [
            {"vector": list(k), "flops_per_batch": c, "score": s, "seed_scores": self.seed_scores.get(k, [])}
            for k, c, s in zip(keys, cost, score)
        ]
        return Front(np.array([keys[i] for i in best]), cost[best], score[best], meta), evaluated


def warm_start(cfg: ExperimentConfig, data: ArrayData, rounds: int) -> np.ndarray:
    """The global weights after `rounds` FedAvg rounds of the config's own devices, in this process:
    where federated training is when the devices start dropping filters. (The held-out scoring
    samples are among the devices' data here, so the score reads lower than on unseen data.)"""
    from edgeweave.platform.config.schema import build_config
    from edgeweave.platform.partition import partition_data
    from edgeweave.platform.run.client import Client
    from edgeweave.platform.run.server import Server

    fedavg = build_config({**cfg.to_dict(), "strategy": {"name": "fedavg"}})
    partition = partition_data(fedavg.partition, data.y_train, fedavg.devices.count, fedavg.seed, data.owners)
    server, client = Server(fedavg, data, partition), Client(fedavg, data, partition)
    for r in range(rounds):
        jobs, _ = server.plan(r)
        server.update([client.run(r, server.weights, jobs)])
    return server.weights.copy()


def evaluations(p: Any) -> int:
    """How many vectors `explore` evaluates at most (for a progress bar)."""
    return len(np.arange(0.0, p.grid_max + 1e-9, p.grid_step)) if p.uniform_only else p.population * p.generations


def explore(explorer: Explorer, on_evaluation: Optional[Callable[[], None]] = None) -> tuple[Front, list[dict]]:
    """Run NSGA-II (pymoo) over grid indices; the no-dropout vector is always in the first population.

    With `uniform_only` every vector that drops one share from every layer is evaluated instead.
    """
    if explorer.p.uniform_only:
        for rate in explorer.grid:
            explorer.evaluate((float(rate),) * explorer.layers)
            if on_evaluation:
                on_evaluation()
        return explorer.front()
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.problem import Problem
    from pymoo.operators.crossover.sbx import SBX
    from pymoo.operators.mutation.pm import PM
    from pymoo.operators.repair.rounding import RoundingRepair
    from pymoo.optimize import minimize

    p, grid, n = explorer.p, explorer.grid, explorer.layers

    class DropoutProblem(Problem):
        def __init__(self) -> None:
            super().__init__(n_var=n, n_obj=2, xl=0, xu=len(grid) - 1, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            rows = []
            for x in np.asarray(X).round().astype(int):
                rows.append(explorer.evaluate(tuple(grid[x])))
                if on_evaluation:
                    on_evaluation()
            out["F"] = np.array(rows)

    g = rng(explorer.cfg.seed, -1, SERVER, Stream.DSE_POPULATION)
    first = np.vstack([np.zeros((1, n), int), g.integers(0, len(grid), size=(p.population - 1, n))])
    algorithm = NSGA2(
        pop_size=p.population,
        sampling=first,
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        eliminate_duplicates=True,
    )
    minimize(DropoutProblem(), algorithm, ("n_gen", p.generations), seed=explorer.cfg.seed, verbose=False)
    return explorer.front()


def store(front: Front, evaluated: list[dict], out: Path, plot: Callable[[Path], Any]) -> None:
    """Write the front (json), its table (csv) and `plot`'s figure (png) beside `out`, then rename each
    into place, the json that runs read last: a search killed while writing leaves the old front whole."""
    tmp = out.with_name(f".{out.stem}.tmp{out.suffix}")
    pairs = [(tmp.with_suffix(s), out.with_suffix(s)) for s in (".csv", ".png")] + [(tmp, out)]
    try:
        front.save(tmp, evaluated)
        plot(tmp.with_suffix(".png"))
        for written, final in pairs:
            rename_durably(written, final)
    finally:
        for written, _ in pairs:
            written.unlink(missing_ok=True)
