"""Training methods: each a file that registers its rules and halves; one line here names its module.

Looking a method up imports its file only, so validating a config loads no other method.
"""

from edgeweave.platform.strategies.base import (STRATEGIES, DeviceHalf, Job, Method, RoundPlan, Rules, ServerHalf,
                                                device_half, server_half)

for _name, _module in {
    "central": "central",
    "distreal": "distreal",
    "fd": "fd",
    "fedavg": "fedavg",
    "fedrolex": "fedrolex",
    "fjord": "fjord",
    "heterofl": "heterofl",
    "scaffold": "scaffold",
    "small": "small",
    "taskwise": "taskwise",
}.items():
    STRATEGIES.declare(_name, f"{__name__}.{_module}")

__all__ = ["STRATEGIES", "DeviceHalf", "Job", "Method", "RoundPlan", "Rules", "ServerHalf", "device_half",
           "server_half"]
