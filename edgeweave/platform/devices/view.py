"""What any process can know about any device: its tier, bandwidth and speed now.

All of it derives from the config and the seed, so the driver and every worker see the same
device without asking each other.
"""

from __future__ import annotations

import numpy as np

from edgeweave.platform.devices.resources import build_resources
from edgeweave.platform.devices.tiers import assign_tiers
from edgeweave.platform.devices.timeline import ClockStalled, DeviceTimeline, Segment, StepRule, device_timeline


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
        """(available, speed in FLOP/s) of each device at virtual time t of the round."""
        available, multiplier = self.resources.state(ids, round_, t)
        return available, self.cfg.devices.flops_per_second * self.tier_speed[self.tier_of[ids]] * multiplier

    def bandwidth(self, ids: np.ndarray) -> np.ndarray:
        return self.tier_bandwidth[self.tier_of[ids]]

    def segment(self, device: int, round_: int) -> Segment:
        """The device's (available, speed, next change) at any absolute time of the round, for its timeline."""
        ids = np.array([device])
        base = self.cfg.devices.flops_per_second * self.tier_speed[self.tier_of[device]]

        def at(t: float) -> tuple[bool, float, float]:
            available, multiplier = self.resources.state(ids, round_, t)
            until = float(self.resources.next_change(ids, round_, t)[0])
            return bool(available[0]), float(base * multiplier[0]), until

        return at

    def timeline(
        self, round_: int, device: int, start: float, model_bytes: float, planned: int, rule: StepRule
    ) -> DeviceTimeline:
        """The device's round from `start` under the config's deadline and straggler policy: the one
        computation the driver (for the clock) and the device (for what it trains) both run."""
        d = self.cfg.devices
        comm = model_bytes / float(self.bandwidth(np.array([device]))[0])
        try:
            return device_timeline(self.segment(device, round_), start, comm, planned, rule, d.deadline, d.stragglers)
        except ClockStalled as e:
            raise ClockStalled(
                f"device {device}, round {round_}, devices.resources = {d.resources.name!r}: {e}"
            ) from None
