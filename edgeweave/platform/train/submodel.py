"""Sub-models that really slice: a plan keeps some output channels of each prunable layer.

A plan maps to the flat positions, in the global weight buffer, of every element the sub-model
keeps. `extract` is then one gather into a real smaller model (smaller tensors, not masks) and
`embed` one scatter-add into the per-element sums and counts of a partial aggregate.

Prunable layers are every conv and every hidden linear layer, in order. The input layer's input
channels are always all kept; the classifier's outputs are all classes, or a plan's class subset
(label split). The first linear layer's inputs follow the last conv's kept channels, times the
pixels of its output. A sub-model's layers carry every setting of the original's (dilation, padding
mode, batch norm's eps and momentum, ...), so the full plan's sub-model is the original network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, cast

import numpy as np
import torch
from torch import nn

from edgeweave.platform.core.arrays import device_of
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.models.flops import FlopsCache
from edgeweave.platform.models.layers import ConvNet
from edgeweave.platform.models.norm import STATISTICS
from edgeweave.platform.train.plans import Plan


@dataclass(frozen=True)
class _Slice:
    """How one named tensor is indexed: by which layer's outputs (dim 0) and inputs (dim 1)."""

    name: str
    offset: int
    shape: tuple[int, ...]
    out_layer: Optional[int]  # prunable layer index; -1: the classes; None: all kept
    in_layer: Optional[int]  # prunable layer feeding this one; None: all inputs kept
    in_pixels: int = 1  # inputs per channel of the layer feeding it (first linear: H x W)


class Slicer:
    """Knows a ConvNet's prunable layers and turns plans into flat positions and sub-models."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, int, int]) -> None:
        if not isinstance(model, ConvNet):
            raise TypeError("sub-model plans need a ConvNet (features + classifier)")
        self.model = model
        self.input_shape = input_shape
        self._flops = FlopsCache()
        self.layout = FlatLayout(model)
        was_training = model.training
        with torch.no_grad():  # the probe lives where the model does (a worker's model may be on a GPU)
            probe = torch.zeros(1, *input_shape, device=device_of(model))
            pixels = model.eval().features(probe).shape[2:].numel()
        model.train(was_training)
        self.pixels = pixels  # per channel of the last conv's output: the first linear's fan-in
        self.widths: list[int] = []
        self.grouped: dict[int, tuple[str, Optional[int], int]] = {}  # layer: (name, layer feeding it, groups)
        owner: dict[str, tuple[Optional[int], Optional[int], int]] = {}
        prev: Optional[int] = None
        for i, m in enumerate(model.features):
            if isinstance(m, nn.Conv2d):
                layer = len(self.widths)
                self.widths.append(m.out_channels)
                if m.groups != 1:  # its weight's dim 1 is one group's inputs: all kept (see `_check_grouped`)
                    self.grouped[layer] = (f"features.{i}", prev, m.groups)
                owner[f"features.{i}.weight"] = (layer, None if m.groups != 1 else prev, 1)
                owner[f"features.{i}.bias"] = (layer, None, 1)
                prev = layer
            elif isinstance(m, nn.BatchNorm2d):
                for p in ("weight", "bias", "running_mean", "running_var"):
                    owner[f"features.{i}.{p}"] = (prev, None, 1)
        self.num_convs = len(self.widths)
        linears = [i for i, m in enumerate(model.classifier) if isinstance(m, nn.Linear)]
        for n, i in enumerate(linears):
            last = n == len(linears) - 1
            layer = -1 if last else len(self.widths)
            if not last:
                self.widths.append(cast(nn.Linear, model.classifier[i]).out_features)
            owner[f"classifier.{i}.weight"] = (layer, prev, pixels if n == 0 else 1)
            owner[f"classifier.{i}.bias"] = (layer, None, 1)
            prev = layer
        self.num_classes = cast(nn.Linear, model.classifier[linears[-1]]).out_features  # `linears`: Linear layers
        self.slices = [
            _Slice(name, off, tuple(shape), *owner[name])
            for name, shape, off in zip(self.layout.names, self.layout.shapes, self.layout.offsets)
        ]

    def flops(self, plan: Optional[Plan]) -> int:
        """Training FLOPs per sample of the full model (None) or of a plan's sub-model, cached by shape."""
        plan = plan if plan is not None else self.full_plan()
        return self._flops.per_sample(plan.signature(), lambda: self.build(plan), self.input_shape, self.num_classes)

    def full_plan(self) -> Plan:
        return Plan(tuple(np.arange(w) for w in self.widths))

    def _check_grouped(self, plan: Plan) -> None:
        """Refuse a plan that thins a grouped conv or the layer feeding it, naming the conv.

        A grouped conv's weight pairs each output with the inputs of its own group only, so keeping
        some channels is no gather of rows and columns: the sub-model would mix other groups' inputs.
        """
        for layer, (name, source, groups) in self.grouped.items():
            for thinned in (layer, source):
                if thinned is not None and len(plan.keep[thinned]) != self.widths[thinned]:
                    what = "its output channels" if thinned == layer else "the channels of the layer feeding it"
                    raise UserError(
                        f"model: {name} is a grouped convolution (groups={groups}), which a sub-model cannot "
                        f"slice; the plan keeps {len(plan.keep[thinned])} of {self.widths[thinned]} of "
                        f"{what}: keep both whole"
                    )

    def _rows(self, plan: Plan, layer: Optional[int], size: int) -> np.ndarray:
        if layer is None:
            return np.arange(size)
        if layer == -1:
            return np.arange(size) if plan.classes is None else np.asarray(plan.classes)
        return np.asarray(plan.keep[layer])

    def count(self, plan: Plan) -> int:
        """How many elements the plan's sub-model has (what `positions` would return, by arithmetic)."""
        self._check_grouped(plan)
        return sum(self._elements(plan, s) for s in self.slices)

    def positions(self, plan: Plan) -> np.ndarray:
        """Flat positions of the sub-model's elements, in the sub-model's own layout order."""
        return self.index(plan).numpy()

    def index(self, plan: Plan, device: Optional[torch.device] = None) -> torch.Tensor:
        """`positions` as an int64 tensor built on `device` (default CPU).

        Only the plan's small per-layer channel lists cross to the device; the positions, as many
        as the sub-model has elements, are computed there.
        """
        self._check_grouped(plan)
        device = torch.device("cpu") if device is None else torch.device(device)
        rows: dict[tuple[Optional[int], int], torch.Tensor] = {}

        def on_device(layer: Optional[int], size: int) -> torch.Tensor:
            if (layer, size) not in rows:
                if layer is None or (layer == -1 and plan.classes is None):
                    rows[layer, size] = torch.arange(size, device=device)
                else:
                    small = np.array(self._rows(plan, layer, size), np.int64)  # a copy: shared plans are read-only
                    rows[layer, size] = torch.from_numpy(small).to(device)
            return rows[layer, size]

        parts = []
        for s in self.slices:
            out = on_device(s.out_layer, s.shape[0])
            if len(s.shape) == 1:
                parts.append(s.offset + out)
                continue
            inner = int(np.prod(s.shape[2:])) if len(s.shape) > 2 else 1
            ins = on_device(s.in_layer, s.shape[1] // s.in_pixels)
            cols = (ins[:, None] * s.in_pixels + torch.arange(s.in_pixels, device=device)[None, :]).reshape(-1)
            grid = (out[:, None] * s.shape[1] + cols[None, :]) * inner
            parts.append((s.offset + grid[:, :, None] + torch.arange(inner, device=device)[None, None, :]).reshape(-1))
        return torch.cat(parts)  # int64 throughout

    def thinned_statistics(self, plan: Plan) -> np.ndarray:
        """Which of the plan's sub-model elements (in its layout order) are running statistics gathered
        on a thinned network: those of a batch norm after a conv that, or an earlier conv of which, keeps
        fewer channels than the full model (`model.norm: per_width` keeps them from the global model)."""
        thinned = np.cumsum([len(k) != w for k, w in zip(plan.keep[: self.num_convs], self.widths)]) > 0
        parts = []
        for s in self.slices:
            n = self._elements(plan, s)
            flag = s.name.rsplit(".", 1)[-1] in STATISTICS and s.out_layer is not None and bool(thinned[s.out_layer])
            parts.append(np.full(n, flag))
        return np.concatenate(parts)

    def _elements(self, plan: Plan, s: _Slice) -> int:
        n = len(self._rows(plan, s.out_layer, s.shape[0]))
        if len(s.shape) > 1:
            n *= len(self._rows(plan, s.in_layer, s.shape[1] // s.in_pixels)) * s.in_pixels
            n *= int(np.prod(s.shape[2:]))
        return n

    def build(self, plan: Plan, scale_kept: bool = False) -> ConvNet:
        """A real model with the plan's widths, on the CPU (uninitialised: `extract` fills it).

        `scale_kept` multiplies a thinned layer's outputs by full width over kept width (HeteroFL's scaler, after
        the conv and before its batch norm; inverted dropout), so activations keep their full-model scale.
        """
        self._check_grouped(plan)
        widths = list(plan.widths())
        n_classes = self.num_classes if plan.classes is None else len(plan.classes)
        features: list[nn.Module] = []
        layer, channels = 0, None
        for m in self.model.features:
            if isinstance(m, nn.Conv2d):
                out = widths[layer]
                features.append(_conv_like(m, channels or m.in_channels, out))
                layer, channels = layer + 1, out
            elif isinstance(m, nn.BatchNorm2d):
                features.append(_batch_norm_like(m, channels or m.num_features))
            else:
                features.append(m)
        classifier: list[nn.Module] = []
        in_features = channels * self.pixels
        linears = [m for m in self.model.classifier if isinstance(m, nn.Linear)]
        for m in self.model.classifier:
            if isinstance(m, nn.Linear):
                out = n_classes if m is linears[-1] else widths[layer]
                if m is not linears[-1]:
                    layer += 1
                classifier.append(nn.utils.skip_init(nn.Linear, in_features, out, bias=m.bias is not None))
                in_features = out
            else:
                classifier.append(m)
        model = ConvNet(nn.Sequential(*features), nn.Sequential(*classifier))
        if scale_kept:
            layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
            for source, (full, kept) in enumerate(zip(self.widths, widths)):
                if kept != full:
                    layers[source].register_forward_hook(lambda m, args, out, f=full / kept: out * f)
        return model

    def at_own_width(self, plan: Plan, flat: np.ndarray) -> np.ndarray:
        """`flat` with the plan's sub-model initialised as if built at its own widths.

        PyTorch draws a conv's or linear layer's weights and bias within 1/sqrt(fan-in); a slice of a fresh
        full model keeps the full fan-in's smaller scale, which a deep stack without batch norm cannot learn
        from. Each kept layer's weights and bias are multiplied by sqrt(full fan-in / kept fan-in).
        """
        sub, positions = self.build(plan), self.positions(plan)
        layout = FlatLayout(sub)
        layout.load(sub, np.ascontiguousarray(flat[positions]))
        prunable = lambda m: [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]  # noqa: E731
        with torch.no_grad():
            for full, kept in zip(prunable(self.model), prunable(sub)):
                factor = float(np.sqrt(full.weight[0].numel() / kept.weight[0].numel()))
                kept.weight.mul_(factor)
                if kept.bias is not None:
                    kept.bias.mul_(factor)
        out = flat.copy()
        out[positions] = layout.flatten(sub)
        return out


def _conv_like(m: nn.Conv2d, in_channels: int, out_channels: int) -> nn.Conv2d:
    """An uninitialised conv with every setting of `m` but its channel counts."""
    return nn.utils.skip_init(
        nn.Conv2d,
        in_channels,
        out_channels,
        m.kernel_size,
        stride=m.stride,
        padding=m.padding,
        dilation=m.dilation,
        groups=m.groups,
        bias=m.bias is not None,
        padding_mode=m.padding_mode,
    )


def _batch_norm_like(m: nn.BatchNorm2d, channels: int) -> nn.BatchNorm2d:
    """A batch norm over `channels` with every setting of `m` (eps, momentum, affine, running statistics)."""
    return nn.BatchNorm2d(
        channels, eps=m.eps, momentum=m.momentum, affine=m.affine, track_running_stats=m.track_running_stats
    )
