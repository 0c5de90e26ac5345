import numpy as np
import torch
from torch import nn

from edgeweave.platform.models.flat import FlatLayout


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))


def test_layout_covers_parameters_and_float_buffers_only():
    m = net()
    layout = FlatLayout(m)
    assert "1.running_mean" in layout.names and "1.num_batches_tracked" not in layout.names
    expected = sum(p.numel() for p in m.parameters()) + 2 * 3
    assert layout.size == expected


def test_flatten_then_load_is_exact_and_in_place():
    a, b = net(), net()
    for p in b.parameters():
        p.data.add_(1.0)
    layout = FlatLayout(a)
    weight = b[0].weight
    flat = layout.flatten(a)
    flat.setflags(write=False)  # as it arrives from the object store
    layout.load(b, flat)
    assert b[0].weight is weight
    np.testing.assert_array_equal(layout.flatten(b), flat)


def test_a_read_only_array_splits_without_a_warning():
    """SCAFFOLD's control variate reaches a worker read-only from the object store; splitting it into the model's
    tensors must not make torch warn (once a process, on every worker). In a fresh process: torch warns once."""
    import subprocess
    import sys

    script = (
        "import warnings, numpy as np\n"
        "from torch import nn\n"
        "from edgeweave.platform.models.flat import FlatLayout\n"
        "layout = FlatLayout(nn.Linear(3, 2))\n"
        "a = np.arange(layout.size, dtype=np.float32); a.setflags(write=False)\n"
        "warnings.simplefilter('error')\n"
        "parts = layout.split(a)\n"
        "assert parts['weight'].shape == (2, 3) and float(parts['bias'][1]) == 7.0\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
