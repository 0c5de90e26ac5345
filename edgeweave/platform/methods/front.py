"""DISTREAL's Pareto front of per-layer dropout vectors, and how a device picks from it.

A front point is a vector d = (d_1..d_L), one dropped fraction per conv layer, with its exact
training FLOPs per mini-batch and its convergence score (validation loss after a short fixed
training budget: lower is better). Costs and scores hold only for the model, data shape and batch
size the front was made for, so a front records them and a run checks them (`check_front`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.devices.timeline import StepRule

MADE_FOR = ("model", "model_params", "input_shape", "num_classes", "batch_size")  # keys `made_for` writes
NORM_FIELDS = ("norm", "norm_samples")  # model parameters recorded apart: they matter only where a model normalises


@dataclass(frozen=True)
class Front:
    vectors: np.ndarray  # (n, L) dropped fraction per conv layer
    flops_per_batch: np.ndarray  # (n,)
    score: np.ndarray  # (n,) lower is better
    meta: dict[str, Any]  # what it was made for (`made_for`), and how
    source: str = ""  # the file it was read from, for messages

    def __post_init__(self) -> None:
        order = np.argsort(self.flops_per_batch, kind="stable")
        for name in ("vectors", "flops_per_batch", "score"):
            object.__setattr__(self, name, np.asarray(getattr(self, name))[order])

    @property
    def layers(self) -> int:
        return self.vectors.shape[1]

    def save(self, path: Path, evaluated: Optional[list[dict]] = None) -> None:
        """front.json (with every evaluated point when given) and front.csv beside it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        points = [
            {"vector": v.tolist(), "flops_per_batch": float(f), "score": float(s)}
            for v, f, s in zip(self.vectors, self.flops_per_batch, self.score)
        ]
        doc = {**self.meta, "points": points, "evaluated": evaluated or []}
        path.write_text(json.dumps(doc, indent=1))
        with open(path.with_suffix(".csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([f"d{i + 1}" for i in range(self.layers)] + ["flops_per_batch", "score"])
            for p in points:
                w.writerow(p["vector"] + [p["flops_per_batch"], p["score"]])


def made_for(cfg, input_shape: Sequence[int], num_classes: int) -> dict[str, Any]:
    """What a front's costs and scores hold for: the model and its parameters, the data's shape, the batch,
    and the batch-norm policy its vectors were scored under."""
    params, t = cfg.model.params.model_dump(mode="json"), cfg.training
    return {
        "model": cfg.model.name,
        "model_params": {k: v for k, v in params.items() if k not in NORM_FIELDS},
        "input_shape": [int(n) for n in input_shape],
        "num_classes": int(num_classes),
        "batch_size": t.batch_size,
        "norm": params.get("norm"),
        "training": {"lr": t.lr, "momentum": t.momentum, "weight_decay": t.weight_decay},
    }


def parse_front(content: Optional[bytes], path: str, field: str = "strategy.front") -> Front:
    """A front from a file's bytes (None: the file was not there)."""
    if content is None:
        raise UserError(f"{field} = {path!r}: no such file; make it with `edgeweave dse CONFIG`")
    try:
        doc = json.loads(content)
        points = doc["points"]
        vectors = np.array([q["vector"] for q in points], np.float64)
        if vectors.ndim != 2 or len(points) == 0:
            raise ValueError("no points")
        return Front(
            vectors,
            np.array([q["flops_per_batch"] for q in points], np.float64),
            np.array([q["score"] for q in points], np.float64),
            {k: v for k, v in doc.items() if k not in ("points", "evaluated")},
            str(path),
        )
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{field} = {path!r}: not a front file ({type(e).__name__}: {e})") from None


def load_front(path: str | Path, field: str = "strategy.front") -> Front:
    """Read a front from disk (runs use the content their config read once: `parse_front`)."""
    p = Path(path)
    return parse_front(p.read_bytes() if p.is_file() else None, str(path), field)


def check_front(front: Front | str | Path, cfg, field: str, data=None, model=None) -> Front:
    """A front must have been made for the config's model, its parameters and batch size, (given the
    data) for the data's input shape and classes, and (given the built model, when it has batch norm)
    under the config's `model.norm`; the first difference is one line naming it."""
    if not isinstance(front, Front):
        front = load_front(front, field)
    where = f"{field} = {front.source!r}"
    missing = [k for k in MADE_FOR if k not in front.meta]
    if missing:
        raise UserError(
            f"{where}: does not record what it was made for ({', '.join(missing)} missing; an older "
            f"edgeweave made it); make it again with `edgeweave dse CONFIG --force`"
        )
    made = front.meta
    theirs_params = made["model_params"] if isinstance(made["model_params"], dict) else {}
    ours_params = {k: v for k, v in cfg.model.params.model_dump(mode="json").items() if k not in NORM_FIELDS}
    diffs = [("model.name =", made["model"], "this config has", cfg.model.name)]
    diffs += [
        (f"model.{k} =", theirs_params.get(k), "this config has", ours_params.get(k))
        for k in sorted(set(theirs_params) | set(ours_params))
    ]
    diffs += [("training.batch_size =", made["batch_size"], "this config has", cfg.training.batch_size)]
    recorded = made.get("training")
    trained = recorded if isinstance(recorded, dict) else {}  # recorded since the policy
    diffs += [(f"training.{k} =", trained[k], "this config has", getattr(cfg.training, k)) for k in sorted(trained)]
    if data is not None:
        data_has = f"data {cfg.data.name!r} has"
        diffs += [
            ("input shape", made["input_shape"], data_has, [int(n) for n in data.input_shape]),
            ("classes", made["num_classes"], data_has, int(data.num_classes)),
        ]
    for name, theirs, who, ours in diffs:
        if theirs != ours:
            raise UserError(
                f"{where}: made for {name} {theirs!r}, but {who} {ours!r}; "
                "make a front for this config with `edgeweave dse CONFIG`"
            )
    norm = getattr(cfg.model.params, "norm", None)
    if model is not None and "batch_norm" in made and made["batch_norm"] != normalises(model):
        had = "with" if made["batch_norm"] else "without"
        raise UserError(
            f"{where}: scored on the model {had} batch norm, but this config's has "
            f"{'none' if made['batch_norm'] else 'batch norm'} (model.norm = {norm!r}); make a front "
            "for this config with `edgeweave dse CONFIG`"
        )
    if model is not None and normalises(model) and made.get("norm") != norm:
        searched = (
            "without a batch-norm policy (an older edgeweave)"
            if made.get("norm") is None
            else f"under model.norm = {made['norm']!r}"
        )
        raise UserError(
            f"{where}: scored {searched}, but this config trains with model.norm = {norm!r}: its scores "
            "rank vectors for other batch-norm statistics; make a front for this config with "
            "`edgeweave dse CONFIG`"
        )
    return front


def normalises(model) -> bool:
    """Whether a built model has batch-norm layers (the only ones `model.norm` changes)."""
    from edgeweave.platform.models.norm import is_batch_norm

    return any(is_batch_norm(m) for m in model.modules())


def front_rule(front: Front, sizes: np.ndarray, batch: int, per_round: bool = False) -> StepRule:
    """The front point a device trains at each mini-batch, chosen by the device alone, as it goes.

    Before each mini-batch the device spreads the compute time it has left (None: no deadline)
    over the mini-batches still to do and takes the best-scoring vector whose cost on this
    mini-batch (`sizes[k]` samples) fits that share at the speed it has now. When even the
    cheapest does not fit the share, it takes the cheapest while that still fits in the time
    left, and stops when it does not: the device's round is then shorter than `len(sizes)`.
    With `per_round` the device chooses so only before its first mini-batch and keeps that vector
    while it fits the time left (an ablation of the per-mini-batch choice).
    """
    per_sample = front.flops_per_batch / batch
    best = int(np.argmin(front.score))
    cheapest = int(np.argmin(front.flops_per_batch))
    steps = len(sizes)
    kept: list[int] = []  # per_round: the vector chosen before the first mini-batch

    def rule(k: int, speed: float, left: Optional[float]) -> Optional[tuple[float, int]]:
        cost = per_sample * float(sizes[k])
        if kept:
            i = kept[0]
            return (float(cost[i]), i) if left is None or cost[i] / speed <= left * (1 + 1e-9) else None
        if left is None:
            return float(cost[best]), best
        times = cost / speed
        fits = times <= left / (steps - k) * (1 + 1e-9)
        if fits.any():
            i = int(np.flatnonzero(fits)[np.argmin(front.score[fits])])
        elif times[cheapest] <= left * (1 + 1e-9):
            i = cheapest
        else:
            return None
        if per_round:
            kept.append(i)
        return float(cost[i]), i

    return rule


def non_dominated(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats on both objectives (both minimised)."""
    keep = []
    for i in range(len(cost)):
        beaten = (cost <= cost[i]) & (score <= score[i]) & ((cost < cost[i]) | (score < score[i]))
        if not beaten.any():
            keep.append(i)
    return np.array(keep, np.int64)
