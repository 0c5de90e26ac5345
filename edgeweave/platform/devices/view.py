"""What any process can know about any device: its tier, bandwidth and speed now.

All of it derives from the config and the seed, so the driver and every worker see the same
device without asking each other.
"""

from __future__ import annotations

import numpy as np

from edgeweave.platform.devices.resources import build_resources
from edgeweave.platform.devices.tiers import assign_tiers


class DeviceView:
    def __init__(self, cfg) -> None:
        d = cfg.devices
        self.cfg = cfg
        self.tier_of = assign_tiers(d.count, [t.share for t in d.tiers], cfg.seed)
        self.tier_speed = np.array([t.speed for t in d.tiers])
        self.tier_bandwidth = np.array([t.bandwidth for t in d.tiers])
        self.resources = build_resources(d.resources, cfg.seed)

    def tier_name(self, device: int) -> str:
        return self.cfg.devices.tiers[self.tier_of[device]].name

    def state(self, ids: np.ndarray, round_: int, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(available, speed in FLOP/s) of each device at the round's start time t."""
        available, multiplier = self.resources.state(ids, round_, t)
        return available, self.cfg.devices.flops_per_second * self.tier_speed[self.tier_of[ids]] * multiplier

    def bandwidth(self, ids: np.ndarray) -> np.ndarray:
        return self.tier_bandwidth[self.tier_of[ids]]
