"""A small CNN: two 3x3 convs (32, 64 filters), a max-pool and a 128-unit hidden layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeweave.platform.models.base import MODELS, ModelParams, scaled

if TYPE_CHECKING:
    from torch import nn


@MODELS.register("cnn", ModelParams)
class CNN:
    """The quickstart and benchmark model: small enough for a laptop, big enough to learn."""

    def __init__(self, params: ModelParams) -> None:
        self.params = params

    def build(self, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        from edgeweave.platform.models.layers import ConvNet, conv_stack, mlp_head

        w = self.params.width
        features, c, pixels = conv_stack([32, 64, "M"], input_shape[0], input_shape[1:], w, False)
        return ConvNet(features, mlp_head(c * pixels, [scaled(128, w)], num_classes))
