import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.models import build_model
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.models.flops import measure_flops_per_sample
from edgeweave.platform.train.aggregate import Partial, average, combine
from edgeweave.platform.train.plans import Plan, nested, random_subset, rolling, uniform_plan
from edgeweave.platform.train.submodel import Slicer
from tests.helpers import tiny_raw


def zoo(tmp_path, name, shape, width=0.25):
    cfg = build_config({**tiny_raw(tmp_path), "model": {"name": name, "width": width}})
    model = build_model(cfg.model, shape, 10, seed=0)
    return model, Slicer(model, shape), FlatLayout(model)


@pytest.mark.parametrize("name", ["cnn", "alexnet", "vgg11", "vgg16"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_extract_is_a_real_smaller_model_equal_to_the_masked_full_one(tmp_path, name, shape):
    model, slicer, layout = zoo(tmp_path, name, shape)
    g = np.random.default_rng(0)
    plan = uniform_plan(slicer, lambda i, w: random_subset(w, 0.5, g), classes=[1, 3, 7])
    pos = slicer.positions(plan)
    flat = layout.flatten(model)
    sub = slicer.build(plan)
    sub_layout = FlatLayout(sub)
    assert sub_layout.size == len(pos) == len(np.unique(pos)) < layout.size
    sub_layout.load(sub, flat[pos])
    # The full model with every dropped element zeroed computes the same logits on kept classes.
    masked = np.zeros_like(flat)
    masked[pos] = flat[pos]
    for n, off, shp in zip(layout.names, layout.offsets, layout.shapes):
        if n.endswith("running_var"):
            seg = masked[off : off + int(np.prod(shp))]
            seg[seg == 0] = 1.0
    layout.load(model, masked)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        np.testing.assert_allclose(sub.eval()(x).numpy(), model.eval()(x)[:, [1, 3, 7]].numpy(), atol=1e-5)


@pytest.mark.parametrize("name", ["cnn", "alexnet", "vgg11"])
def test_scale_kept_is_inverted_dropout_on_what_each_layer_receives(tmp_path, name):
    """Scaling kept outputs by full/kept width equals the plain sub-model with every layer that reads
    a thinned layer taking its inputs times that factor; a layer kept whole passes on unscaled."""
    shape = (3, 32, 32)
    model, slicer, layout = zoo(tmp_path, name, shape)
    g = np.random.default_rng(1)
    rates = [0.5 if i % 2 == 0 else 1.0 for i in range(len(slicer.widths))]
    plan = uniform_plan(slicer, lambda i, w: random_subset(w, rates[i], g))
    weights = layout.flatten(model)[slicer.positions(plan)]
    scaled, plain = slicer.build(plan, scale_kept=True), slicer.build(plan)
    for m in (scaled, plain):
        FlatLayout(m).load(m, weights)
    readers = [m for m in plain.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][1:]
    factors = [full / kept for full, kept in zip(slicer.widths, plan.widths())]
    assert any(f > 1 for f in factors) and any(f == 1 for f in factors)
    with torch.no_grad():
        for layer, f in zip(readers, factors):
            layer.weight.mul_(f)
        x = torch.randn(4, *shape)
        np.testing.assert_allclose(scaled.eval()(x).numpy(), plain.eval()(x).numpy(), rtol=1e-4, atol=1e-5)
        unscaled = slicer.build(plan)
        FlatLayout(unscaled).load(unscaled, weights)
        assert not np.allclose(scaled(x).numpy(), unscaled.eval()(x).numpy(), atol=1e-3)


def test_full_plan_is_the_whole_model_in_order(tmp_path):
    _, slicer, layout = zoo(tmp_path, "vgg11", (1, 8, 8))
    assert np.array_equal(slicer.positions(slicer.full_plan()), np.arange(layout.size))


def test_extract_then_embed_is_exact(tmp_path):
    model, slicer, layout = zoo(tmp_path, "cnn", (1, 8, 8))
    flat = layout.flatten(model)
    plan = uniform_plan(slicer, lambda i, w: nested(w, 0.5))
    pos = slicer.positions(plan)
    p = Partial.zeros(layout.size)
    p.add(flat[pos], weight=3.0, mask=pos)
    previous = np.full(layout.size, -7.0, np.float32)
    out = average(previous, p.sums, p.counts)
    np.testing.assert_array_equal(out[pos], flat[pos])
    rest = np.setdiff1d(np.arange(layout.size), pos)
    assert (out[rest] == -7.0).all()


def test_overlapping_sub_models_average_per_element(tmp_path):
    model, slicer, layout = zoo(tmp_path, "cnn", (1, 8, 8))
    a = uniform_plan(slicer, lambda i, w: np.arange(0, w // 2))  # left half of every layer
    b = uniform_plan(slicer, lambda i, w: np.arange(w // 4, w))  # right three quarters
    pa, pb = slicer.positions(a), slicer.positions(b)
    one, two = Partial.zeros(layout.size), Partial.zeros(layout.size)
    one.add(np.full(len(pa), 1.0, np.float32), weight=1.0, mask=pa)
    two.add(np.full(len(pb), 4.0, np.float32), weight=2.0, mask=pb)
    total = combine([one, two], one.sums.size)
    out = average(np.zeros(layout.size, np.float32), total.sums, total.counts)
    both = np.intersect1d(pa, pb)
    assert len(both) > 0
    np.testing.assert_allclose(out[both], (1 * 1 + 2 * 4) / 3)
    np.testing.assert_allclose(out[np.setdiff1d(pa, pb)], 1.0)
    np.testing.assert_allclose(out[np.setdiff1d(pb, pa)], 4.0)
    untouched = np.setdiff1d(np.arange(layout.size), np.union1d(pa, pb))
    assert (out[untouched] == 0).all()


def test_half_width_has_about_a_quarter_of_the_inner_flops():
    net = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )
    from edgeweave.platform.models.layers import ConvNet

    model = ConvNet(net, nn.Sequential(nn.Linear(64 * 8 * 8, 10)))
    slicer = Slicer(model, (3, 16, 16))
    half = slicer.build(uniform_plan(slicer, lambda i, w: nested(w, 0.5)))

    def inner_flops(m):  # FLOPs of the conv layers after the first (both sides sliced)
        from torch.utils.flop_counter import FlopCounterMode

        x = torch.zeros(2, 32 if m is model else 16, 16, 16)
        with FlopCounterMode(display=False) as c:
            m.features[2:](x).sum().backward()
        return c.get_total_flops()

    ratio = inner_flops(half) / inner_flops(model)
    assert 0.24 < ratio < 0.26
    total = measure_flops_per_sample(half, (3, 16, 16), 10) / measure_flops_per_sample(model, (3, 16, 16), 10)
    assert 0.24 < total < 0.35  # the input layer and classifier shrink only on one side


def test_channel_choices():
    assert list(nested(8, 0.5)) == [0, 1, 2, 3]
    assert list(nested(10, 0.25)) == [0, 1, 2]  # ceil
    assert list(nested(3, 0.01)) == [0]  # at least one
    assert list(rolling(8, 0.5, 6)) == [0, 1, 6, 7]  # wraps around
    a = random_subset(100, 0.3, np.random.default_rng(1))
    assert len(a) == 30 and len(set(a.tolist())) == 30 and list(a) == sorted(a)
    assert np.array_equal(a, random_subset(100, 0.3, np.random.default_rng(1)))


def test_plan_classes_restrict_the_output_rows(tmp_path):
    _, slicer, layout = zoo(tmp_path, "cnn", (1, 8, 8))
    plan = Plan(slicer.full_plan().keep, classes=np.array([2, 5]))
    sub = slicer.build(plan)
    assert sub.classifier[-1].out_features == 2
    assert FlatLayout(sub).size == len(slicer.positions(plan))


@pytest.mark.parametrize("name", ["cnn", "alexnet", "vgg11", "kws_cnn"])
def test_count_equals_the_number_of_positions(tmp_path, name):
    _, slicer, _ = zoo(tmp_path, name, (1, 8, 8))
    g = np.random.default_rng(2)
    for rate in (1.0, 0.5, 0.2):
        plan = uniform_plan(
            slicer, lambda i, w, rate=rate: random_subset(w, rate, g), classes=[0, 4] if rate < 1 else None
        )
        assert slicer.count(plan) == len(slicer.positions(plan))


class Transfers(TorchFunctionMode):
    """Counts the elements of every tensor sent to another device or to NumPy (.to, .cpu, .cuda, .numpy).

    On the CPU nothing really crosses, but the calls are the same ones that cross PCIe on a GPU.
    """

    MOVES = {"to", "cpu", "cuda", "numpy", "__array__"}

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        to_device = (
            name != "to"
            or "device" in kwargs
            or any(isinstance(a, (torch.device, str, torch.Tensor)) for a in args[1:])
        )  # not a dtype-only .to
        if name in self.MOVES and to_device and args and isinstance(args[0], torch.Tensor):
            self.elements += args[0].numel()
        return func(*args, **kwargs)


def test_the_per_batch_engine_moves_no_weights_between_devices_per_step(tmp_path):
    from edgeweave.platform.core.seeding import rng
    from edgeweave.platform.train.plans import dropout_plan
    from edgeweave.platform.train.sgd import SGDSettings
    from edgeweave.platform.train.sliced_training import SubModels, train_per_batch

    model, slicer, layout = zoo(tmp_path, "cnn", (1, 8, 8), width=0.5)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    plans = [dropout_plan(slicer, [0.5, 0.25], rng(0, 0, 0, k)) for k in range(12)]  # a new plan every step
    models = SubModels(slicer)

    def moved(steps: int) -> int:
        weights = torch.from_numpy(layout.flatten(model))
        s = SGDSettings(lr=0.05, momentum=0.9, weight_decay=1e-3, batch_size=8, steps=steps)
        with Transfers() as t:
            train_per_batch(models, weights, x, y, s, torch.Generator().manual_seed(1), lambda k: plans[k])
        return t.elements

    moved(1)  # builds the sub-model once
    per_step = (moved(12) - moved(2)) / 10
    # Per step only the batch, its labels and the plan's channel lists may cross, never the weights.
    assert per_step < 0.05 * min(slicer.count(p) for p in plans), per_step


@pytest.mark.parametrize("name", ["cnn", "vgg11", "kws_cnn"])
def test_index_on_a_device_is_the_positions(tmp_path, name):
    _, slicer, _ = zoo(tmp_path, name, (1, 8, 8))
    g = np.random.default_rng(4)
    plan = uniform_plan(slicer, lambda i, w: random_subset(w, 0.4, g), classes=[2, 5, 9])
    index = slicer.index(plan, torch.device("cpu"))
    assert index.dtype == torch.int64 and index.device.type == "cpu"
    assert np.array_equal(index.numpy(), slicer.positions(plan))


def plugin_net() -> nn.Module:
    """A plugin's network with settings the zoo never uses: dilation, reflect padding, stride, no conv
    or linear bias, batch norm with its own eps and momentum, one without affine or momentum."""
    from edgeweave.platform.models.layers import ConvNet

    features = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=2, dilation=2, padding_mode="reflect", bias=False),
        nn.BatchNorm2d(6, eps=0.1, momentum=0.5),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, dilation=2),  # 12x12 -> 4x4
        nn.BatchNorm2d(8, affine=False, momentum=None),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )
    model = ConvNet(features, nn.Sequential(nn.Linear(8 * 2 * 2, 12, bias=False), nn.ReLU(), nn.Linear(12, 5)))
    with torch.no_grad():  # running statistics that differ from a fresh layer's
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model


def leaves(model: nn.Module) -> list[str]:
    return [repr(m) for m in model.modules() if not list(m.children())]


def test_full_width_sub_model_keeps_every_layer_setting_so_equals_the_original():
    """Dilation, padding mode, stride, bias, batch norm's eps, momentum and affine all carry over:
    the full plan's sub-model computes what the original does, in training and evaluation, and costs the same."""
    torch.manual_seed(0)
    shape = (3, 12, 12)
    model = plugin_net()
    slicer, layout = Slicer(model, shape), FlatLayout(model)
    sub = slicer.build(slicer.full_plan())
    assert leaves(sub) == leaves(model)
    sub_layout = FlatLayout(sub)
    assert sub_layout.names == layout.names and sub_layout.shapes == layout.shapes
    sub_layout.load(sub, layout.flatten(model))
    x = torch.randn(4, *shape)
    with torch.no_grad():
        np.testing.assert_allclose(sub.eval()(x).numpy(), model.eval()(x).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(sub.train()(x).numpy(), model.train()(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sub_layout.flatten(sub), layout.flatten(model), rtol=1e-6)  # momentum's update
    assert slicer.flops(None) == measure_flops_per_sample(model, shape, 5)


def grouped_net() -> nn.Module:
    from edgeweave.platform.models.layers import ConvNet

    features = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=4),
        nn.ReLU(),
        nn.Conv2d(8, 6, 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )
    return ConvNet(features, nn.Sequential(nn.Linear(6 * 4 * 4, 4)))


def test_a_grouped_conv_is_kept_whole_or_refused_by_name():
    """A grouped conv's weight holds each output's own group of inputs only, so slicing its channels (or its
    input's) is no channel gather; its full width works, thinning it or its input raises naming the layer."""
    torch.manual_seed(0)
    shape = (3, 8, 8)
    model = grouped_net()
    slicer, layout = Slicer(model, shape), FlatLayout(model)
    full = slicer.full_plan()
    assert np.array_equal(slicer.positions(full), np.arange(layout.size)) and slicer.count(full) == layout.size
    sub = slicer.build(full)
    assert leaves(sub) == leaves(model)
    FlatLayout(sub).load(sub, layout.flatten(model))
    x = torch.randn(2, *shape)
    with torch.no_grad():
        np.testing.assert_allclose(sub.eval()(x).numpy(), model.eval()(x).numpy(), rtol=1e-5, atol=1e-6)
    after = uniform_plan(slicer, lambda i, w: nested(w, 0.5) if i == 2 else np.arange(w))  # reads it whole
    assert slicer.count(after) == len(slicer.positions(after)) < layout.size
    for thinned in (0, 1):  # its input, itself
        plan = uniform_plan(slicer, lambda i, w, thinned=thinned: nested(w, 0.5) if i == thinned else np.arange(w))
        for use in (slicer.build, slicer.positions, slicer.count):
            with pytest.raises(UserError, match=r"features\.2 .*groups=4"):
                use(plan)


def test_a_plan_received_read_only_indexes_without_a_warning(tmp_path):
    """Plans shared through the object store arrive as read-only arrays; indexing them must not hand torch a
    read-only buffer (it warns, once a process, on every worker)."""
    import subprocess
    import sys

    script = (
        "import warnings, numpy as np, torch\n"
        "from torch import nn\n"
        "from edgeweave.platform.models.layers import ConvNet\n"
        "from edgeweave.platform.train.plans import Plan\n"
        "from edgeweave.platform.train.submodel import Slicer\n"
        "m = ConvNet(nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()),\n"
        "            nn.Sequential(nn.Flatten(), nn.Linear(4 * 16, 3)))\n"
        "keep = np.array([0, 2]); keep.setflags(write=False)\n"
        "classes = np.array([0, 2]); classes.setflags(write=False)\n"
        "warnings.simplefilter('error')\n"
        "Slicer(m, (1, 4, 4)).index(Plan((keep,), classes))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)  # a fresh process: torch
    assert proc.returncode == 0, proc.stderr[-2000:]  # warns only once in a process's life
