"""Model zoo: cnn, alexnet, vgg11, vgg16 in CIFAR form, all adapting to 8x8 inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeweave.platform.models.base import MODELS

if TYPE_CHECKING:
    from torch import nn

for _name, _module in {"alexnet": "alexnet", "cnn": "cnn", "kws_cnn": "kws_cnn", "vgg11": "vgg", "vgg16": "vgg"}.items():
    MODELS.declare(_name, f"{__name__}.{_module}")  # imported when a config names the model

__all__ = ["MODELS", "build_model"]


def build_model(choice, input_shape: tuple[int, int, int], num_classes: int, seed: int) -> nn.Module:
    """Build the configured model with initial weights drawn from `seed` (global RNG untouched), its batch
    norm set up for the config's `model.norm` (`apply_norm`; a plugin model's own batch norm included)."""
    import torch  # here, not at import: a config is validated without torch

    from edgeweave.platform.errors import UserError
    from edgeweave.platform.norm import apply_norm, is_batch_norm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODELS.build(choice.name, choice.params).build(input_shape, num_classes)
    if "norm" not in type(choice.params).model_fields and any(is_batch_norm(m) for m in model.modules()):
        raise UserError(f"model.name = {choice.name!r}: it has batch-norm layers, but its parameters "
                        f"({type(choice.params).__name__}) have no `norm`; subclass ModelParams so that model.norm "
                        "can say whose statistics the global model keeps")
    return apply_norm(model, getattr(choice.params, "norm", None))
