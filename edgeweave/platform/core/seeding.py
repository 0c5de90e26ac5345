"""Every random draw derives from (seed, round, device id, stream[, index]), never from global state.

A device's randomness then does not depend on which worker trained it, nor in which order,
and a resumed run draws exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    import torch

SERVER = -1  # the device id used for the driver's own draws (sampling, evaluation order)


@enum.unique
class Stream(enum.IntEnum):
    """What a draw is for: one constant per purpose, so two purposes never share a key.

    Many draws of one purpose in a round (one per layer, per mini-batch) are told apart by `index`,
    a key word of its own: adding it to the stream (`400 + k`) would meet another purpose's constant.
    """

    ROUND = 0  # the driver's sampling of a round's devices (device SERVER); a device's mini-batch order
    DATA_SPLIT = 1  # a data set's train/test split
    SYNTHETIC_DATA = 2
    PARTITION = 3  # which samples each device holds
    TIERS = 5  # which tier each device is in
    DISPATCH = 7  # async: which available devices start
    DSE_HOLD_OUT = 60  # the DSE's validation samples
    DSE_DROPOUT = 70  # the DSE's sub-model per mini-batch (index: the mini-batch)
    DSE_POPULATION = 80  # the DSE's first population
    DSE_BATCHES = 90  # the DSE's mini-batch order
    FD_CHANNELS = 100  # Federated Dropout's channels (index: the layer)
    FJORD_WIDTHS = 200  # FjORD's width per mini-batch
    DISTREAL_DROPOUT = 300  # DISTREAL's sub-model per mini-batch (index: the mini-batch)
    TASKWISE_THIN = 400  # task-wise decoupling's thinning per mini-batch (index: the mini-batch)
    TASKWISE_TASKS = 500  # task-wise decoupling's sampled tasks of a device
    NORM_STATISTICS = 600  # the training samples `norm: static` recomputes batch-norm statistics from
    SHAPES_DATA = 700  # the `shapes` data set's classes and samples


def rng(
    seed: int, round_: int, device: int, stream: int = Stream.ROUND, index: Optional[int] = None
) -> np.random.Generator:
    """A NumPy generator for one (seed, round, device, stream), or one (seed, round, device, stream, index).

    Each field is one 32-bit word of the key, so keys of one length cannot alias: NumPy would split a
    larger int into several words and move every later field along. The indexed keys are one word
    longer than the rest, and NumPy pads only keys shorter than 4 words, so the two never meet.
    """
    fields = {"seed": seed, "round": round_ + 1, "device": device + 1, "stream": int(stream)}
    if index is not None:
        fields["index"] = index
    words = []
    for name, word in fields.items():
        if not 0 <= word < 2**32:
            value = {"round": round_, "device": device}.get(name, word)
            raise ValueError(f"random key: {name} = {value} is out of range (a 32-bit word)")
        words.append(int(word))
    return np.random.default_rng(words)


def torch_generator(
    seed: int, round_: int, device: int, stream: int = Stream.ROUND, index: Optional[int] = None
) -> torch.Generator:
    """A torch generator seeded from the same derivation as `rng`."""
    import torch  # only processes that train import torch

    g = torch.Generator()
    g.manual_seed(int(rng(seed, round_, device, stream, index).integers(0, 2**62)))
    return g
