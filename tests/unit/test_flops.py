import numpy as np
import pytest
from torch import nn

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.models import build_model
from edgeweave.platform.models.flops import FlopsCache, measure_flops_per_sample, shaped_flops_per_sample
from edgeweave.platform.train.plans import dropout_plan, nested, uniform_plan
from edgeweave.platform.train.submodel import Slicer


def small_net():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 8 * 8, 10)
    )


def test_flops_of_a_small_conv_net_by_hand():
    conv1 = 2 * 1 * 4 * 9 * 64  # multiply-adds x 2, per output pixel, 8x8 output
    conv2 = 2 * 4 * 8 * 9 * 64
    fc = 2 * 512 * 10
    # Backward: weight gradients for every layer, input gradients for all but the first.
    expected = (conv1 + conv2 + fc) + conv1 + 2 * (conv2 + fc)
    assert measure_flops_per_sample(small_net(), (1, 8, 8), 10) == expected


def test_flops_are_cached_per_key_and_shape():
    built = []

    def build():
        built.append(1)
        return small_net()

    cache = FlopsCache()
    a = cache.per_sample("full", build, (1, 8, 8), 10)
    b = cache.per_sample("full", build, (1, 8, 8), 10)
    assert a == b and len(built) == 1


@pytest.mark.parametrize(
    "name,shape,width",
    [
        ("cnn", (1, 8, 8), 0.25),
        ("cnn", (3, 32, 32), 1.0),
        ("alexnet", (3, 32, 32), 0.25),
        ("vgg11", (3, 32, 32), 0.25),
        ("kws_cnn", (1, 40, 51), 0.5),
    ],
)
def test_counting_from_shapes_equals_torchs_counter_on_the_zoo_and_its_sub_models(name, shape, width):
    model = build_model(build_config({"name": "x", "model": {"name": name, "width": width}}).model, shape, 10, 0)
    slicer = Slicer(model, shape)
    g = np.random.default_rng(0)
    plans = [
        slicer.full_plan(),
        uniform_plan(slicer, lambda i, w: nested(w, 0.5), classes=[1, 4, 7]),
        dropout_plan(slicer, [0.5] * slicer.num_convs, g),
    ]
    for plan in plans:
        for scale_kept in (False, True):
            sub = slicer.build(plan, scale_kept)
            shaped = shaped_flops_per_sample(sub, shape)
            counted = measure_flops_per_sample(sub, shape, 10)
            assert shaped is not None and shaped == counted, (plan.widths(), scale_kept)


def test_models_of_other_layers_are_left_to_torchs_counter():
    assert shaped_flops_per_sample(small_net(), (1, 8, 8)) is None  # not a ConvNet: its forward could do anything
    model = build_model(build_config({"name": "x", "model": {"name": "cnn", "width": 0.25}}).model, (1, 8, 8), 10, 0)
    model.features[0] = nn.Conv2d(1, 8, 3, padding=1, groups=1)
    assert shaped_flops_per_sample(model, (1, 8, 8)) is not None
    model.classifier.append(nn.GELU())
    assert shaped_flops_per_sample(model, (1, 8, 8)) is None
