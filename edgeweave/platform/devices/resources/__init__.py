"""Resource models: constant, uniform, markov, diurnal, trace."""

from edgeweave.platform.devices.resources.base import RESOURCES, ResourceModel

for _name in ("constant", "diurnal", "markov", "trace", "uniform"):  # one module each, imported when named
    RESOURCES.declare(_name, f"{__name__}.{_name}")

__all__ = ["RESOURCES", "ResourceModel", "build_resources"]


def build_resources(choice, seed: int) -> ResourceModel:
    return RESOURCES.build(choice.name, choice.params, seed=seed)
