"""Every registry of pluggable parts, and the module that registers each built-in name.

Looking a name up imports that one module (`Registry.declare`), so validating a config loads only
the parts it names, and the schema needs no import of the parts themselves. A new built-in part is
one file that registers itself and one line here; a plugin's parts need no line.
"""

from __future__ import annotations

from edgeweave.platform.core.registry import Registry

DATASETS: Registry = Registry("dataset")
PARTITIONERS: Registry = Registry("partition policy", key="policy")
MODELS: Registry = Registry("model")
RESOURCES: Registry = Registry("resource model")
STRATEGIES: Registry = Registry("strategy")
SERVER_RULES: Registry = Registry("server rule")

_P = "edgeweave.platform"
BUILT_IN: dict[Registry, dict[str, str]] = {
    DATASETS: {
        "cifar10": "data.cifar",
        "cifar100": "data.cifar",
        "digits": "data.digits",
        "femnist": "data.femnist",
        "shapes": "data.shapes",
        "speech_commands": "data.speech_commands",
        "synthetic": "data.synthetic",
    },
    PARTITIONERS: {name: f"partition.{name}" for name in ("classes", "dirichlet", "iid", "natural", "pool", "shards")},
    MODELS: {
        "alexnet": "models.alexnet",
        "cnn": "models.cnn",
        "kws_cnn": "models.kws_cnn",
        "vgg11": "models.vgg",
        "vgg16": "models.vgg",
    },
    RESOURCES: {name: f"devices.resources.{name}" for name in ("constant", "diurnal", "markov", "trace", "uniform")},
    STRATEGIES: {
        name: f"methods.{name}"
        for name in (
            "central",
            "distreal",
            "fd",
            "fedavg",
            "fedrolex",
            "fjord",
            "heterofl",
            "scaffold",
            "small",
            "taskwise",
        )
    },
    SERVER_RULES: {name: "methods.server_rules" for name in ("plain", "momentum", "adam", "yogi", "adagrad")},
}
for _registry, _names in BUILT_IN.items():
    for _name, _module in _names.items():
        _registry.declare(_name, f"{_P}.{_module}")
