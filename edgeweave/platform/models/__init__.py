"""Model zoo: cnn, alexnet, vgg11, vgg16 in CIFAR form (all adapting to 8x8 inputs), and kws_cnn for speech.

A model is one file here and one line in `core/registries.py`; `layers.py` holds the building
blocks, `flat.py` a model's weights as one buffer, `norm.py` whose batch-norm statistics the global
model keeps, `flops.py` the FLOPs of a forward and backward pass. Imports only `core`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeweave.platform.models.base import MODELS

# The rooms this one's modules may import; tests/unit/test_layout.py holds every import to it.
MAY_IMPORT = ("core",)

if TYPE_CHECKING:
    from torch import nn


__all__ = ["MODELS", "build_model"]


def build_model(choice, input_shape: tuple[int, int, int], num_classes: int, seed: int) -> nn.Module:
    """Build the configured model with initial weights drawn from `seed` (global RNG untouched), its batch
    norm set up for the config's `model.norm` (`apply_norm`; a plugin model's own batch norm included)."""
    import torch  # here, not at import: a config is validated without torch

    from edgeweave.platform.core.errors import UserError
    from edgeweave.platform.models.norm import apply_norm, is_batch_norm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODELS.build(choice.name, choice.params).build(input_shape, num_classes)
    if "norm" not in type(choice.params).model_fields and any(is_batch_norm(m) for m in model.modules()):
        raise UserError(
            f"model.name = {choice.name!r}: it has batch-norm layers, but its parameters "
            f"({type(choice.params).__name__}) have no `norm`; subclass ModelParams so that model.norm "
            "can say whose statistics the global model keeps"
        )
    return apply_norm(model, getattr(choice.params, "norm", None))
