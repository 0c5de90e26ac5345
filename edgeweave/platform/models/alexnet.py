"""AlexNet in its CIFAR form: five 3x3 convs, each with batch norm, three max-pools and a two-layer head."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeweave.platform.models.base import MODELS, ModelParams, scaled

if TYPE_CHECKING:
    from torch import nn


@MODELS.register("alexnet", ModelParams)
class AlexNet:
    """64-192-384-256-256 filters, each followed by batch norm (kept as `model.norm` says; `none` removes it, and
    without it the deep thin sub-models of task-wise decoupling do not leave their first plateau), hidden head
    of 1024 units (no dropout: draws stay seeded)."""

    def __init__(self, params: ModelParams) -> None:
        self.params = params

    def build(self, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        from edgeweave.platform.models.layers import ConvNet, conv_stack, mlp_head

        w = self.params.width
        spec: list[int | str] = [64, "M", 192, "M", 384, 256, 256, "M"]
        features, c, pixels = conv_stack(spec, input_shape[0], input_shape[1:], w, self.params.has_batch_norm())
        hidden = [scaled(1024, w), scaled(1024, w)]
        return ConvNet(features, mlp_head(c * pixels, hidden, num_classes))
