from torch import nn

from edgeweave.platform.flops import FlopsCache, measure_flops_per_sample


def small_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1),
                         nn.Flatten(), nn.Linear(8 * 8 * 8, 10))


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
