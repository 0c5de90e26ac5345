"""DISTREAL's Pareto front of per-layer dropout vectors, and how a device picks from it.

A front point is a vector d = (d_1..d_L), one dropped fraction per conv layer, with its exact
training FLOPs per mini-batch and its convergence score (validation loss after a short fixed
training budget: lower is better).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from edgeweave.platform.errors import UserError


@dataclass(frozen=True)
class Front:
    vectors: np.ndarray  # (n, L) dropped fraction per conv layer
    flops_per_batch: np.ndarray  # (n,)
    score: np.ndarray  # (n,) lower is better
    meta: dict[str, Any]

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
        points = [{"vector": v.tolist(), "flops_per_batch": float(f), "score": float(s)}
                  for v, f, s in zip(self.vectors, self.flops_per_batch, self.score)]
        doc = {**self.meta, "points": points, "evaluated": evaluated or []}
        path.write_text(json.dumps(doc, indent=1))
        with open(path.with_suffix(".csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([f"d{i + 1}" for i in range(self.layers)] + ["flops_per_batch", "score"])
            for p in points:
                w.writerow(p["vector"] + [p["flops_per_batch"], p["score"]])


def load_front(path: str | Path, field: str = "strategy.front") -> Front:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{field} = {str(path)!r}: no such file; make it with `edgeweave dse CONFIG`")
    try:
        doc = json.loads(p.read_text())
        points = doc["points"]
        vectors = np.array([q["vector"] for q in points], np.float64)
        if vectors.ndim != 2 or len(points) == 0:
            raise ValueError("no points")
        return Front(vectors, np.array([q["flops_per_batch"] for q in points], np.float64),
                     np.array([q["score"] for q in points], np.float64),
                     {k: v for k, v in doc.items() if k not in ("points", "evaluated")})
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{field} = {str(path)!r}: not a front file ({type(e).__name__}: {e})") from None


def check_front(path: str, cfg, field: str) -> None:
    """A front must exist and have been made for the config's model at its batch size."""
    front = load_front(path, field)
    if front.meta.get("model") != cfg.model.name or front.meta.get("batch_size") != cfg.training.batch_size:
        raise UserError(
            f"{field} = {path!r}: made for model {front.meta.get('model')!r} at batch size "
            f"{front.meta.get('batch_size')}, not {cfg.model.name!r} at {cfg.training.batch_size}; "
            f"run `edgeweave dse` for this config")


def schedule(front: Front, steps: int, speed: float, seconds: Optional[float]) -> np.ndarray:
    """The front point a device trains at each mini-batch, chosen by the device alone.

    At each mini-batch the device spreads the compute time it has left (`seconds`, None for no
    deadline) over the mini-batches still to do and takes the best-scoring vector whose cost
    fits that share at its current `speed` (FLOP/s). When even the cheapest does not fit the
    share, it does the cheapest mini-batches that still fit in the time left and stops: the
    schedule is then shorter than `steps` (partial work).
    """
    chosen: list[int] = []
    used = 0.0
    times = front.flops_per_batch / speed
    for k in range(steps):
        if seconds is None:
            fits = np.ones(len(times), bool)
        else:
            fits = times <= (seconds - used) / (steps - k) * (1 + 1e-9)
        if not fits.any():
            cheapest = int(np.argmin(times))
            while len(chosen) < steps and used + times[cheapest] <= seconds * (1 + 1e-9):
                chosen.append(cheapest)
                used += times[cheapest]
            break
        i = int(np.flatnonzero(fits)[np.argmin(front.score[fits])])
        chosen.append(i)
        used += times[i]
    return np.array(chosen, np.int64)


def non_dominated(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of points no other point beats on both objectives (both minimised)."""
    keep = []
    for i in range(len(cost)):
        beaten = (cost <= cost[i]) & (score <= score[i]) & ((cost < cost[i]) | (score < score[i]))
        if not beaten.any():
            keep.append(i)
    return np.array(keep, np.int64)
