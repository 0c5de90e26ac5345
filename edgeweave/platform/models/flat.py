"""A model's floating-point state as one flat float32 buffer: one message per round, in-place loads."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgeweave.platform.core.arrays import tensor_view


class FlatLayout:
    """Names, shapes and offsets of a model's parameters and floating buffers, in state_dict order."""

    def __init__(self, model: nn.Module) -> None:
        self.names: list[str] = []
        self.shapes: list[torch.Size] = []
        offsets = [0]
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                self.names.append(name)
                self.shapes.append(t.shape)
                offsets.append(offsets[-1] + t.numel())
        self.offsets = offsets

    @property
    def size(self) -> int:
        return self.offsets[-1]

    def _tensors(self, model: nn.Module) -> list[torch.Tensor]:
        state = model.state_dict(keep_vars=True)
        return [state[n].data for n in self.names]

    def flatten(self, model: nn.Module) -> np.ndarray:
        """A fresh float32 copy of the model's state."""
        return torch.cat([t.detach().reshape(-1).float().cpu() for t in self._tensors(model)]).numpy()

    def load(self, model: nn.Module, flat: np.ndarray | torch.Tensor) -> None:
        """Copy `flat` (an array, or a tensor already where the model lives) into the model's own tensors."""
        src = flat if isinstance(flat, torch.Tensor) else tensor_view(flat)
        for t, a, b in zip(self._tensors(model), self.offsets[:-1], self.offsets[1:]):
            t.copy_(src[a:b].view(t.shape))

    def grads(self, model: nn.Module) -> torch.Tensor:
        """The gradients in layout order; buffers and untouched parameters give zeros."""
        state = model.state_dict(keep_vars=True)
        return torch.cat(
            [
                (state[n].grad if state[n].grad is not None else torch.zeros_like(state[n])).reshape(-1)
                for n in self.names
            ]
        )

    def learned(self, model: nn.Module) -> np.ndarray:
        """A bool mask over the flat elements: True on parameters, False on buffers (batch-norm statistics)."""
        params = {n for n, _ in model.named_parameters()}
        return np.concatenate(
            [np.full(b - a, n in params) for n, a, b in zip(self.names, self.offsets[:-1], self.offsets[1:])]
        )

    def gather(self, named: dict[str, torch.Tensor]) -> np.ndarray:
        """Named tensors (some of the layout's) as one flat float32 array, zeros where none is given."""
        out = np.zeros(self.size, np.float32)
        for n, a, b in zip(self.names, self.offsets[:-1], self.offsets[1:]):
            if n in named:
                out[a:b] = named[n].detach().reshape(-1).float().cpu().numpy()
        return out

    def split(self, flat: np.ndarray) -> dict[str, torch.Tensor]:
        """A flat array (a mask, say) as named tensors of the model's shapes, to be read (a read-only array from
        the object store, SCAFFOLD's shared control variate, is fine)."""
        src = tensor_view(flat)
        return {
            n: src[a:b].view(s).to(torch.float32)
            for n, s, a, b in zip(self.names, self.shapes, self.offsets[:-1], self.offsets[1:])
        }
