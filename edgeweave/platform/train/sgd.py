"""Local SGD's settings and a device's step count: arithmetic both halves of a method need, without torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from edgeweave.platform.config.schema import ExperimentConfig


@dataclass(frozen=True)
class SGDSettings:
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 1
    steps: Optional[int] = None  # when set, a fixed number of mini-batches instead of epochs
    prox_mu: float = 0.0  # FedProx: mu (w - w_start) joins every step's gradient


@dataclass(frozen=True)
class LocalResult:
    samples: int  # samples processed (with repeats over epochs)
    steps: int
    loss: float  # mean training loss over the steps (the task's loss, without a method's added term)
    gradient: Any = None  # the mean over the steps of each parameter's loss gradient, when asked for


def sgd_settings(cfg: "ExperimentConfig") -> SGDSettings:
    """The local-training settings of an experiment config."""
    t = cfg.training
    return SGDSettings(t.lr, t.momentum, t.weight_decay, t.batch_size, t.local_epochs, t.local_steps, t.prox_mu)


def local_steps(n: int, s: SGDSettings) -> int:
    """Mini-batches of a device's local work on n samples."""
    return s.steps if s.steps is not None else s.epochs * -(-n // s.batch_size)
