"""A keyword-spotting CNN for log-mel spectrograms (1 x 40 mel bands x 101 frames)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeweave.platform.models.base import MODELS, ModelParams, scaled

if TYPE_CHECKING:
    from torch import nn


@MODELS.register("kws_cnn", ModelParams)
class KwsCNN:
    """Four batch-normed (`norm: none`: plain) 3x3 conv layers (32-64-64-128) with pooling, and a 128-unit head."""

    def __init__(self, params: ModelParams) -> None:
        self.params = params

    def build(self, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        from edgeweave.platform.models.layers import ConvNet, conv_stack, mlp_head

        w = self.params.width
        features, c, pixels = conv_stack(
            [32, "M", 64, "M", 64, "M", 128, "M"],
            input_shape[0],
            input_shape[1:],
            w,
            batch_norm=self.params.has_batch_norm(),
        )
        return ConvNet(features, mlp_head(c * pixels, [scaled(128, w)], num_classes))
