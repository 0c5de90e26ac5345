"""Natural: each device is one owner of samples (a FEMNIST writer, a Speech Commands speaker).

The realistic non-IID split: a device holds what one real person wrote or said. With fewer
devices than owners, the owners that become devices are drawn from the seed.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Params
from edgeweave.platform.partition.base import PARTITIONERS


@PARTITIONERS.register("natural")
class Natural:
    """Device d holds every training sample of the d-th drawn owner."""

    uses_owners = True  # `partition_data` passes the data's owner of each sample

    def __init__(self, params: Params) -> None:
        self.params = params

    def split(
        self, labels: np.ndarray, num_devices: int, g: np.random.Generator, owners: Optional[np.ndarray] = None
    ) -> list[np.ndarray]:
        """Each device's samples: all of one owner's, for `num_devices` owners drawn from `g`."""
        if owners is None:
            raise UserError(
                "partition.policy = 'natural': this data set does not say who made each sample; "
                "natural needs femnist (writers) or speech_commands (speakers)"
            )
        ids, inverse = np.unique(owners, return_inverse=True)
        if num_devices > len(ids):
            raise UserError(
                f"devices.count = {num_devices}: partition 'natural' makes one device per owner, and "
                f"the data has {len(ids)}; use at most {len(ids)} devices"
            )
        chosen = np.sort(g.choice(len(ids), size=num_devices, replace=False))
        order = np.argsort(inverse, kind="stable")
        starts = np.searchsorted(inverse[order], np.arange(len(ids) + 1))
        return [order[starts[k] : starts[k + 1]] for k in chosen]
