import pytest
import torch

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.models import build_model
from tests.helpers import tiny_raw


def model_choice(tmp_path, **model):
    return build_config({**tiny_raw(tmp_path), "model": model}).model


@pytest.mark.parametrize("name", ["cnn", "alexnet", "vgg11", "vgg16", "kws_cnn"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (1, 40, 101)])
def test_every_model_runs_on_digits_cifar_and_spectrogram_shapes(tmp_path, name, shape):
    m = build_model(model_choice(tmp_path, name=name, width=0.125), shape, 7, seed=0)
    out = m(torch.randn(2, *shape))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_width_scales_the_hidden_layers(tmp_path):
    def count(w):
        return sum(
            p.numel() for p in build_model(model_choice(tmp_path, name="cnn", width=w), (3, 32, 32), 10, 0).parameters()
        )

    assert count(0.5) < 0.35 * count(1.0)


def test_cnn_is_the_benchmark_shape(tmp_path):
    m = build_model(model_choice(tmp_path, name="cnn"), (3, 32, 32), 10, seed=0)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [32, 64]
    assert [lin.out_features for lin in linears] == [128, 10]
    assert linears[0].in_features == 64 * 16 * 16


def test_initial_weights_come_from_the_seed_only(tmp_path):
    choice = model_choice(tmp_path, name="cnn", width=0.25)
    a = build_model(choice, (1, 8, 8), 10, seed=5)
    torch.rand(100)  # the global generator's state must not matter
    b = build_model(choice, (1, 8, 8), 10, seed=5)
    c = build_model(choice, (1, 8, 8), 10, seed=6)
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
