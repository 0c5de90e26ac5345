"""Batch norm as each method's paper does it: which statistics the global model evaluates with.

Training always normalises with the mini-batch's own statistics; the policies differ in where the
global model's running statistics come from:

- `running`: each device's running statistics are averaged into the global model like weights,
  those of thinned sub-models included (plain FedAvg practice; with sub-models, the damage the
  thinned networks' statistics do to the full one is the config's choice);
- `static`: devices keep no running statistics (HeteroFL's static batch norm, Diao et al. 2021);
  before each evaluation the global statistics are recomputed through the full model from a fixed
  sample of the devices' training data (free: not on the virtual clock, as evaluation is not);
- `per_width`: running statistics that stay with the width that gathered them: a device reports a
  layer's statistics only when it trained that layer and every layer before it at full width, so the
  global (full-width) model's come from full-width training alone (slimmable networks' switchable
  batch norm, as FjORD keeps it; the thinned widths' own are not kept, as only the full model is
  evaluated);
- `none`: no batch-norm layers at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional, TypeGuard, get_args

import numpy as np

if TYPE_CHECKING:
    from torch import nn

    from edgeweave.platform.models.flat import FlatLayout

Norm = Literal["running", "static", "per_width", "none"]
NORMS: tuple[str, ...] = get_args(Norm)
STATISTICS = ("running_mean", "running_var")


def is_batch_norm(m: "nn.Module") -> TypeGuard[nn.modules.batchnorm._BatchNorm]:
    """Any of torch's batch norms (1d, 2d, 3d, lazy)."""
    from torch import nn

    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def apply_norm(model: "nn.Module", norm: Optional[str]) -> "nn.Module":
    """The built model with the policy's batch norm: `none` replaces every batch-norm layer by an identity;
    `static` trains with momentum 0 (a device's running statistics pass through its training unchanged, the
    server recomputes the global model's); `running` and `per_width` (or None) leave it as built."""
    from torch import nn

    if norm == "none":
        for parent in list(model.modules()):
            for name, child in parent.named_children():
                if is_batch_norm(child):
                    setattr(parent, name, nn.Identity())
    elif norm == "static":
        for m in model.modules():
            if is_batch_norm(m) and m.track_running_stats:
                m.momentum = 0.0
    return model


def statistics_mask(layout: "FlatLayout") -> np.ndarray:
    """Which elements of the flat weights are batch-norm running statistics (mean and variance)."""
    mask = np.zeros(layout.size, bool)
    for name, a, b in zip(layout.names, layout.offsets[:-1], layout.offsets[1:]):
        if name.rsplit(".", 1)[-1] in STATISTICS:
            mask[a:b] = True
    return mask


def statistics_rows(seed: int, held: np.ndarray, count: int) -> np.ndarray:
    """The training rows `static` recomputes statistics from: `count` of `held` (all when fewer), drawn once
    from the seed, in order; the server and the DSE draw them alike."""
    from edgeweave.platform.core.seeding import SERVER, Stream, rng

    g = rng(seed, -1, SERVER, Stream.NORM_STATISTICS)
    return np.sort(g.choice(held, size=min(len(held), count), replace=False))


def recompute_statistics(model: "nn.Module", x: np.ndarray, batch_size: int = 500) -> None:
    """Replace every batch norm's running statistics by the average of its batch statistics over `x`,
    passed through the full model in batches (HeteroFL's procedure after training: momentum None)."""
    import torch

    from edgeweave.platform.core.arrays import device_of, tensor_view

    norms = [m for m in model.modules() if is_batch_norm(m) and m.track_running_stats]
    if not norms or len(x) == 0:
        return
    saved = [m.momentum for m in norms]
    modes = {m: m.training for m in model.modules()}
    model.eval()  # only the batch norms gather: a plugin's dropout layers draw nothing here
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: every batch counts alike
        m.train()
    device = device_of(model)
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            model(tensor_view(x[i : i + batch_size]).to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    for module, training in modes.items():
        module.train(training)
