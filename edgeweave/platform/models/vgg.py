"""VGG-11 and VGG-16 in their CIFAR form: batch-normed 3x3 convs (`norm: none`: plain) and one linear classifier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeweave.platform.models.base import MODELS, ModelParams

if TYPE_CHECKING:
    from torch import nn

SPECS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class _VGG:
    depth: str

    def __init__(self, params: ModelParams) -> None:
        self.params = params

    def build(self, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        from edgeweave.platform.models.layers import ConvNet, conv_stack, mlp_head

        p = self.params
        features, c, pixels = conv_stack(
            SPECS[self.depth], input_shape[0], input_shape[1:], p.width, p.has_batch_norm()
        )
        return ConvNet(features, mlp_head(c * pixels, [], num_classes))


@MODELS.register("vgg11", ModelParams)
class VGG11(_VGG):
    """VGG-11 (Simonyan & Zisserman 2015), 8 conv layers."""

    depth = "vgg11"


@MODELS.register("vgg16", ModelParams)
class VGG16(_VGG):
    """VGG-16 (Simonyan & Zisserman 2015), 13 conv layers."""

    depth = "vgg16"
