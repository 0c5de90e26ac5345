"""Every random draw derives from (seed, round, device id, stream), never from global state.

A device's randomness then does not depend on which worker trained it, nor in which order,
and a resumed run draws exactly what an uninterrupted one would have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SERVER = -1  # the device id used for the driver's own draws (sampling, evaluation order)


def rng(seed: int, round_: int, device: int, stream: int = 0) -> np.random.Generator:
    """A NumPy generator for one (seed, round, device, stream)."""
    return np.random.default_rng([seed, round_ + 1, device + 1, stream])


def torch_generator(seed: int, round_: int, device: int, stream: int = 0) -> torch.Generator:
    """A torch generator seeded from the same derivation as `rng`."""
    import torch  # only processes that train import torch

    g = torch.Generator()
    g.manual_seed(int(rng(seed, round_, device, stream).integers(0, 2**62)))
    return g
