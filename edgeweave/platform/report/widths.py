"""A global model scored at each width of the nested family: the per-width accuracy HeteroFL and FjORD report.

The model at `rate` keeps the left-most ceil(rate x width) channels of every layer, as the nested width methods
train it, unscaled (HeteroFL's scaler acts in training only). Its batch-norm statistics are recomputed at that
width from the run's fixed sample of training rows, as HeteroFL's sBN computes them per model rate and as FjORD's
per-width batch norms hold them, and it is scored on the test set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from safetensors.torch import load_file

from edgeweave.platform.config.schema import ExperimentConfig, load_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.data import ArrayData, load_dataset
from edgeweave.platform.models import build_model
from edgeweave.platform.models.base import ModelParams
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.models.norm import is_batch_norm, recompute_statistics, statistics_rows
from edgeweave.platform.partition import partition_data
from edgeweave.platform.train.plans import nested, uniform_plan
from edgeweave.platform.train.submodel import Slicer
from edgeweave.platform.train.training import evaluate


def width_scores(
    cfg: ExperimentConfig, data: ArrayData, weights: np.ndarray, rates: Sequence[float], x_statistics: np.ndarray
) -> dict[float, tuple[float, float]]:
    """Test (accuracy, loss) of the nested sub-model at each rate of the full model's flat `weights`."""
    bad = [r for r in rates if not 0 < r <= 1]
    if bad:
        raise UserError(f"--widths = {bad[0]}: a width is a rate in (0, 1]")
    model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
    slicer = Slicer(model, data.input_shape)
    scores = {}

    def pick(rate: float) -> Callable[[int, int], np.ndarray]:
        return lambda i, w: nested(w, rate)

    for rate in rates:
        plan = uniform_plan(slicer, pick(rate))
        sub = slicer.build(plan)
        FlatLayout(sub).load(sub, np.ascontiguousarray(weights[slicer.positions(plan)]))
        if any(is_batch_norm(m) for m in sub.modules()):
            recompute_statistics(sub, x_statistics, cfg.training.eval_batch_size)
        scores[float(rate)] = evaluate(sub, data.x_test, data.y_test, cfg.training.eval_batch_size)
    return scores


def run_width_scores(run_dir: Path, rates: Sequence[float]) -> dict[float, tuple[float, float]]:
    """`width_scores` of a finished run's final model (its `model.safetensors`), with its own config and data."""
    weights_file = run_dir / "model.safetensors"
    if not weights_file.is_file():
        raise UserError(f"run = {str(run_dir)!r}: no model.safetensors (the run has not finished)")
    cfg = load_config(run_dir / "config.yaml")
    data = load_dataset(cfg.data, cfg.seed)
    partition = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
    model.load_state_dict(load_file(str(weights_file)))
    # a plugin model whose parameters are plain Params has no batch norm (build_model refuses one) and no
    # norm_samples: the rows are then never used; drawn as a ModelParams model would draw them
    count = getattr(cfg.model.params, "norm_samples", ModelParams.model_fields["norm_samples"].default)
    rows = statistics_rows(cfg.seed, partition.indices, count)
    with torch.no_grad():
        weights = FlatLayout(model).flatten(model)
    return width_scores(cfg, data, weights, rates, data.x_train[rows])
