"""Resource models: constant, uniform, markov, diurnal, trace."""

from edgeweave.platform.devices.resources.base import RESOURCES, ResourceModel

__all__ = ["RESOURCES", "ResourceModel", "build_resources"]


def build_resources(choice, seed: int) -> ResourceModel:
    return RESOURCES.build(choice.name, choice.params, seed=seed)
