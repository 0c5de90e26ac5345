"""Speech Commands read from a tiny folder of generated WAV files in the data set's own layout."""

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from edgeweave.platform.config import build_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.data.speech_commands import RATE, log_mel, mel_filterbank
from edgeweave.platform.errors import UserError
from tests.helpers import tiny_raw


def write_tree(root, words=("no", "yes"), per_word=4):
    """Tones of a different pitch per word; one clip of each word on each list."""
    g = np.random.default_rng(0)
    testing, validation = [], []
    for k, word in enumerate(words):
        (root / word).mkdir(parents=True)
        for i in range(per_word):
            n = RATE - 2000 * (i % 2)  # some clips shorter than 1 s
            t = np.arange(n) / RATE
            x = 0.5 * np.sin(2 * np.pi * (300 + 900 * k) * t) + 0.01 * g.standard_normal(n)
            wavfile.write(root / word / f"spk{i}_nohash_0.wav", RATE, (x * 32767).astype(np.int16))
        testing.append(f"{word}/spk0_nohash_0.wav")
        validation.append(f"{word}/spk1_nohash_0.wav")
    (root / "_background_noise_").mkdir()
    (root / "testing_list.txt").write_text("\n".join(testing) + "\n")
    (root / "validation_list.txt").write_text("\n".join(validation) + "\n")


def choice(tmp_path, **data):
    return build_config({**tiny_raw(tmp_path), "data": {"name": "speech_commands", **data}}).data


def test_layout_splits_and_features(tmp_path):
    write_tree(tmp_path / "sc")
    d = load_dataset(choice(tmp_path, root=str(tmp_path / "sc")), seed=0)
    assert d.num_classes == 2
    assert d.x_train.shape == (4, 1, 40, 101) and d.x_test.shape == (2, 1, 40, 101)
    assert sorted(d.y_test.tolist()) == [0, 1] and sorted(d.y_train.tolist()) == [0, 0, 1, 1]
    # Different pitches light up different mel bands.
    band = d.x_train.mean(axis=(1, 3)).argmax(axis=1)
    assert band[d.y_train == 0].max() < band[d.y_train == 1].min()


def test_word_subset_and_unknown_word(tmp_path):
    write_tree(tmp_path / "sc", words=("no", "off", "yes"))
    d = load_dataset(choice(tmp_path, root=str(tmp_path / "sc"), words=["yes", "no"]), seed=0)
    assert d.num_classes == 2
    with pytest.raises(UserError, match=r"data.words = \['up'\]: no folder 'up'.*found: no, off, yes"):
        load_dataset(choice(tmp_path, root=str(tmp_path / "sc"), words=["up"]), seed=0)


def test_missing_data_says_where_it_looked(tmp_path):
    with pytest.raises(UserError, match=r"Speech Commands not found \(looked for .*testing_list.txt\); set data.download=true"):
        load_dataset(choice(tmp_path, root=str(tmp_path / "none")), seed=0)


def test_mel_filterbank_and_log_mel():
    fb = mel_filterbank(40, 480)
    assert fb.shape == (40, 241) and (fb >= 0).all() and fb.max() <= 1.0
    assert (fb.sum(dim=1) > 0).all()  # every band covers some frequency
    centres = fb.argmax(dim=1)
    assert (centres[1:] >= centres[:-1]).all()
    tone = torch.sin(2 * torch.pi * 1000 * torch.arange(RATE) / RATE)[None]
    spec = log_mel(tone)
    assert spec.shape == (1, 1, 40, 101)
    assert abs(int(spec[0, 0].mean(dim=1).argmax()) - int((fb[:, round(1000 / 8000 * 240)]).argmax())) <= 1
