import os
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.data import load_dataset
from edgeweave.platform.data.augment import crop_flip
from tests.helpers import tiny_raw


def data_choice(tmp_path, **data):
    return build_config({**tiny_raw(tmp_path), "data": data}).data


def test_digits_are_bundled_normalised_and_stratified(tmp_path):
    d = load_dataset(data_choice(tmp_path, name="digits"), seed=0)
    assert d.x_train.shape[1:] == (1, 8, 8) and d.x_train.dtype == np.float32
    assert len(d.y_train) + len(d.y_test) == 1797
    assert abs(len(d.y_test) - 0.2 * 1797) <= 10
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-3
    train_share = np.bincount(d.y_train, minlength=10) / len(d.y_train)
    test_share = np.bincount(d.y_test, minlength=10) / len(d.y_test)
    assert np.abs(train_share - test_share).max() < 0.01


def test_synthetic_repeats_from_its_seed_and_is_learnable(tmp_path):
    choice = data_choice(
        tmp_path, name="synthetic", num_classes=4, train_samples=200, test_samples=80, image_size=16, difficulty=0.5
    )
    a, b = load_dataset(choice, seed=1), load_dataset(choice, seed=1)
    c = load_dataset(choice, seed=2)
    assert a.x_train.shape == (200, 3, 16, 16) and a.num_classes == 4
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    # Class-conditional: nearest class mean already beats chance by far.
    means = np.stack([a.x_train[a.y_train == k].mean(0) for k in range(4)])
    dist = ((a.x_test[:, None] - means[None]) ** 2).sum(axis=(2, 3, 4))
    assert (dist.argmin(1) == a.y_test).mean() > 0.7


def test_synthetic_difficulty_makes_it_harder(tmp_path):
    def nearest_mean_accuracy(difficulty):
        d = load_dataset(
            data_choice(
                tmp_path,
                name="synthetic",
                num_classes=4,
                train_samples=200,
                test_samples=200,
                image_size=8,
                difficulty=difficulty,
            ),
            seed=0,
        )
        means = np.stack([d.x_train[d.y_train == k].mean(0) for k in range(4)])
        dist = ((d.x_test[:, None] - means[None]) ** 2).sum(axis=(2, 3, 4))
        return (dist.argmin(1) == d.y_test).mean()

    assert nearest_mean_accuracy(0.2) > nearest_mean_accuracy(5.0)


def write_fake_cifar(root, folder, files, label_key, n, classes, rng):
    """Tiny CIFAR batches in torchvision's on-disk layout: pickled dicts of uint8 rows and labels."""
    base = root / folder
    base.mkdir(parents=True)
    for name in files:
        batch = {
            "data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            label_key: rng.integers(0, classes, size=n).tolist(),
        }
        with open(base / name, "wb") as f:
            pickle.dump(batch, f)


@pytest.mark.parametrize(
    "name, folder, train, test, key, classes",
    [
        ("cifar10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
        ("cifar100", "cifar-100-python", ["train"], ["test"], "fine_labels", 100),
    ],
)
def test_cifar_reads_torchvision_layout(tmp_path, name, folder, train, test, key, classes):
    write_fake_cifar(tmp_path, folder, train + test, key, 6, classes, np.random.default_rng(0))
    d = load_dataset(data_choice(tmp_path, name=name, root=str(tmp_path)), seed=0)
    assert d.x_train.shape == (6 * len(train), 3, 32, 32)
    assert d.x_test.shape == (6, 3, 32, 32)
    assert d.num_classes == classes and d.augment
    assert d.y_train.max() < classes


def test_cifar_missing_with_download_off_says_where_and_how(tmp_path):
    with pytest.raises(UserError) as err:
        load_dataset(data_choice(tmp_path, name="cifar10", root=str(tmp_path)), seed=0)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in msg
    assert "data.download=true" in msg and "cifar-10-python.tar.gz" in msg


def test_cifar_batches_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    base = tmp_path / "cifar-100-python"
    base.mkdir()
    for name in ("train", "test"):
        with open(base / name, "wb") as f:
            pickle.dump({"data": Evil(), "fine_labels": [0]}, f)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load \w+\.system"):
        load_dataset(data_choice(tmp_path, name="cifar100", root=str(tmp_path)), seed=0)
    assert not marker.exists()


def test_crop_flip_keeps_shape_repeats_and_moves_pixels():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    a = crop_flip(x, torch.Generator().manual_seed(0))
    b = crop_flip(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    outs = [crop_flip(x, torch.Generator().manual_seed(s)) for s in range(8)]
    assert any(not torch.equal(o, x) for o in outs)


def test_crop_flip_without_padding_is_identity_or_mirror():
    x = torch.randn(16, 1, 5, 5)
    out = crop_flip(x, torch.Generator().manual_seed(3), pad=0)
    for i in range(16):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(2))
    flipped = sum(not torch.equal(out[i], x[i]) for i in range(16))
    assert 0 < flipped < 16


def _synthetic_one_by_one(protos, n, g, difficulty):
    """The synthetic draw sample by sample (the reference the vectorised draw must equal bit for bit)."""
    y = g.integers(0, len(protos), size=n).astype(np.int64)
    x = protos[y] * g.uniform(0.7, 1.3, size=(n, 1, 1, 1)).astype(np.float32)
    shifts = g.integers(-2, 3, size=(n, 2))
    for i in range(n):
        x[i] = np.roll(x[i], shift=(int(shifts[i, 0]), int(shifts[i, 1])), axis=(1, 2))
    x += difficulty * g.standard_normal(x.shape).astype(np.float32)
    return x, y


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 9000), st.integers(0, 2**31), st.floats(0.0, 7.3), st.integers(4, 9), st.integers(1, 3))
def test_synthetic_draws_the_same_bits_as_one_sample_at_a_time(n, seed, difficulty, size, channels):
    from edgeweave.platform.data.synthetic import Synthetic, SyntheticParams

    gen = Synthetic(SyntheticParams(image_size=size, channels=channels, difficulty=difficulty))
    protos = np.random.default_rng(seed).standard_normal((10, channels, size, size)).astype(np.float32)
    x, y = gen._draw(protos, n, np.random.default_rng(seed + 1))
    x_ref, y_ref = _synthetic_one_by_one(protos, n, np.random.default_rng(seed + 1), difficulty)
    assert np.array_equal(y, y_ref) and np.array_equal(x, x_ref)
