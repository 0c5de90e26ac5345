"""The generated Speech Commands stand-in: the real layout, speakers that differ, and a class signal that is in
the sequence of sounds (a linear model on the log-mel features learns it; the bands' average alone does less)."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.data import load_dataset
from edgeweave.platform.data.speech_synth import WORDS, clip, generate, speaker_voice, word_pattern


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("sc") / "speech"
    generate(root, {"train": 600, "validation": 30, "test": 240}, WORDS[:6], seed=4)
    return root


def test_the_tree_loads_in_the_real_layout_with_speakers_kept_apart(tree):
    d = load_dataset(build_config({"data": {"name": "speech_commands", "root": str(tree)}}).data, seed=0)
    assert d.num_classes == 6 and d.x_train.shape[1:] == (1, 40, 101)
    assert 560 <= len(d.y_train) <= 640 and 200 <= len(d.y_test) <= 260
    assert np.bincount(d.y_train).min() >= 80  # words take turns
    testing = set((tree / "testing_list.txt").read_text().split())
    said = {}  # speaker -> their clips
    for wav in tree.glob("*/*.wav"):
        if not wav.parent.name.startswith("_"):
            said.setdefault(wav.name.split("_nohash_")[0], []).append(f"{wav.parent.name}/{wav.name}")
    on_test = [sum(c in testing for c in clips) for clips in said.values()]
    assert all(n in (0, len(clips)) for n, clips in zip(on_test, said.values()))  # a speaker is all in or all out
    assert 0 < sum(n > 0 for n in on_test) < len(said)
    assert len(np.unique(d.owners)) > 100  # three clips a speaker: the natural partition has many owners


def test_a_linear_model_learns_the_words_from_unseen_speakers(tree):
    d = load_dataset(build_config({"data": {"name": "speech_commands", "root": str(tree)}}).data, seed=0)
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    accuracy = LogisticRegression(max_iter=300).fit(flat(d.x_train), d.y_train).score(flat(d.x_test), d.y_test)
    assert accuracy > 0.6  # chance: 1/6


def test_generating_again_reuses_a_complete_tree_and_refuses_a_foreign_folder(tree, tmp_path):
    assert generate(tree, {"train": 600, "validation": 30, "test": 240}, WORDS[:6], seed=4) is False
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"data.root = .*: holds files this generator did not write"):
        generate(tmp_path, {"train": 30, "validation": 3, "test": 6}, WORDS[:3])
    assert (tmp_path / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize("word", range(5))
def test_speakers_say_a_word_differently(word):
    g = np.random.default_rng(0)
    voices = [speaker_voice(s, seed=0) for s in range(2)]
    assert voices[0] != voices[1]
    a, b = (clip(word_pattern(word, 0), v, g) for v in voices)
    assert 12000 <= len(a) <= 16000 and 12000 <= len(b) <= 16000 and np.abs(a).max() <= 1
    n = min(len(a), len(b))
    assert not np.allclose(a[:n], b[:n])
