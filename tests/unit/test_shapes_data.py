"""The `shapes` data set: drawn from its seed, balanced, its class told by no colour, brightness or template."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.seeding import SERVER, Stream, rng
from edgeweave.platform.data import load_dataset
from edgeweave.platform.data.shapes import COMPOSITIONS, FACTORS, Shapes, ShapesParams
from tests.helpers import tiny_raw


def load(seed: int = 0, **params):
    return Shapes(ShapesParams(**params)).load(seed)


def nearest_class_mean_accuracy(d, feature) -> float:
    f_train, f_test = feature(d.x_train), feature(d.x_test)
    means = np.stack([f_train[d.y_train == k].mean(0) for k in range(d.num_classes)])
    return float((((f_test[:, None] - means[None]) ** 2).sum(-1).argmin(1) == d.y_test).mean())


def test_a_config_names_it_and_gets_normalised_colour_images(tmp_path):
    choice = build_config(
        {
            **tiny_raw(tmp_path),
            "data": {"name": "shapes", "num_classes": 4, "train_samples": 40, "test_samples": 12, "image_size": 16},
        }
    ).data
    d = load_dataset(choice, seed=1)
    assert d.x_train.shape == (40, 3, 16, 16) and d.x_test.shape == (12, 3, 16, 16) and d.num_classes == 4
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64 and d.y_test.dtype == np.int64
    assert np.allclose(d.x_train.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    assert np.allclose(d.x_train.std(axis=(0, 2, 3)), 1, atol=1e-3)
    assert not d.augment


def test_repeats_from_its_seed_and_differs_by_seed():
    a, b, c = (
        load(3, train_samples=30, test_samples=10),
        load(3, train_samples=30, test_samples=10),
        load(4, train_samples=30, test_samples=10),
    )
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.x_train, c.x_train)
    draw = lambda seed: Shapes(ShapesParams()).classes(rng(seed, -1, SERVER, Stream.SHAPES_DATA))  # noqa: E731
    assert np.array_equal(draw(3), draw(3)) and not np.array_equal(draw(3), draw(4))


def test_colour_brightness_and_templates_do_not_tell_the_class():
    """Colours, position, turn and distractors are drawn apart from the class: the nearest class mean of the
    per-channel means (colour, brightness), of those and the per-channel spread, or of the whole image (a
    template) is near chance (10%)."""
    d = load(0, num_classes=10, train_samples=1000, test_samples=500)
    channel_means = lambda x: x.mean(axis=(2, 3))  # noqa: E731
    means_and_spread = lambda x: np.concatenate([x.mean(axis=(2, 3)), x.std(axis=(2, 3))], axis=1)  # noqa: E731
    for feature in (channel_means, means_and_spread, lambda x: x.reshape(len(x), -1)):
        assert nearest_class_mean_accuracy(d, feature) < 0.17


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    classes=st.integers(2, 12),
    extra=st.integers(0, 20),
    test=st.integers(1, 15),
    size=st.integers(8, 20),
    distractors=st.integers(0, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_size_gives_balanced_labels_and_finite_images(classes, extra, test, size, distractors, seed):
    d = load(
        seed,
        num_classes=classes,
        train_samples=classes + extra,
        test_samples=test,
        image_size=size,
        distractors=distractors,
    )
    assert d.x_train.shape == (classes + extra, 3, size, size) and d.x_test.shape == (test, 3, size, size)
    assert np.isfinite(d.x_train).all() and np.isfinite(d.x_test).all()
    counts = np.bincount(d.y_train, minlength=classes)
    assert len(counts) == classes and counts.min() >= 1 and counts.max() - counts.min() <= 1  # every class
    assert 0 <= d.y_test.min() and d.y_test.max() < classes


@settings(max_examples=25, deadline=None)
@given(classes=st.integers(2, COMPOSITIONS), seed=st.integers(0, 2**32 - 1))
def test_classes_are_distinct_compositions(classes, seed):
    """Up to 4,096 classes, no two the same composition: each can be learnt, in principle."""
    kinds = Shapes(ShapesParams(num_classes=classes)).classes(rng(seed, -1, SERVER, Stream.SHAPES_DATA))
    assert kinds.shape == (classes, len(FACTORS))
    assert len({tuple(k) for k in kinds}) == classes
    assert (kinds >= 0).all() and (kinds < np.array(FACTORS)).all()


@pytest.mark.parametrize(
    "bad",
    [
        {"num_classes": 1},
        {"num_classes": COMPOSITIONS + 1},
        {"image_size": 4},
        {"distractors": -1},
        {"noise": -0.1},
        {"colour": "red"},
    ],
)
def test_refuses_what_it_cannot_draw(bad):
    with pytest.raises(ValidationError):
        ShapesParams(**bad)
