"""The names a plugin imports: registries, the parameter base, the parts a model, data set or method is made of.

These stay importable from here whatever moves inside `edgeweave.platform`, so a plugin written
against this module survives a reorganisation. A part registers itself with its registry's
decorator, e.g. `@MODELS.register("mine", MyParams)`, or for a method
`STRATEGIES.add("mine", Method(MyRules, MyServer, MyDevice), MyParams)`. Names whose module imports
torch (`ConvNet`, `conv_stack`, `mlp_head`, `Slicer`) load on first use, so a config that names a
plugin is validated without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registries import DATASETS, MODELS, PARTITIONERS, RESOURCES, SERVER_RULES, STRATEGIES
from edgeweave.platform.core.registry import Params
from edgeweave.platform.data.base import ArrayData
from edgeweave.platform.devices import hashing
from edgeweave.platform.devices.resources.base import ResourceModel
from edgeweave.platform.methods.base import DeviceHalf, Job, Method, RoundPlan, Rules, ServerHalf
from edgeweave.platform.methods.context import DeviceContext, Facts, ServerContext
from edgeweave.platform.methods.server_rules import ServerRule
from edgeweave.platform.models.base import ModelParams, scaled
from edgeweave.platform.partition.base import Partition
from edgeweave.platform.train.aggregate import Partial
from edgeweave.platform.train.plans import Plan

if TYPE_CHECKING:
    from edgeweave.platform.models.layers import ConvNet, conv_stack, mlp_head
    from edgeweave.platform.train.submodel import Slicer

_WITH_TORCH = {
    "ConvNet": "edgeweave.platform.models.layers",
    "conv_stack": "edgeweave.platform.models.layers",
    "mlp_head": "edgeweave.platform.models.layers",
    "Slicer": "edgeweave.platform.train.submodel",
}

__all__ = [
    "DATASETS",
    "MODELS",
    "PARTITIONERS",
    "RESOURCES",
    "SERVER_RULES",
    "STRATEGIES",
    "ArrayData",
    "ConvNet",
    "DeviceContext",
    "DeviceHalf",
    "Facts",
    "Job",
    "Method",
    "ModelParams",
    "Params",
    "Partial",
    "Partition",
    "Plan",
    "ResourceModel",
    "RoundPlan",
    "Rules",
    "ServerContext",
    "ServerHalf",
    "ServerRule",
    "Slicer",
    "UserError",
    "conv_stack",
    "hashing",
    "mlp_head",
    "scaled",
]


def __getattr__(name: str) -> Any:
    """The torch-backed names, imported when first asked for."""
    if name in _WITH_TORCH:
        import importlib

        return getattr(importlib.import_module(_WITH_TORCH[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
