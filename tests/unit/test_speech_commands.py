"""Speech Commands read from a tiny folder of generated WAV files in the data set's own layout."""

import os

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.data import load_dataset
from edgeweave.platform.data import speech_commands as sc
from edgeweave.platform.data.base import normalise, normalise_in_place
from edgeweave.platform.data.speech_commands import RATE, log_mel, mel_filterbank
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
    # spk2 and spk3 said both words in the training split: two speakers, two clips each
    assert d.owners.tolist() == [0, 1, 0, 1]
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
    with pytest.raises(
        UserError,
        match=r"Speech Commands not found \(looked for .*testing_list.txt\); set data.download=true.*speech_synth.generate",
    ):
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


# Streaming and the feature cache: the real set is ~96,000 clips read, so clips are transformed a
# chunk at a time and the features are cached under the root.


def clip_paths(root):
    return [
        p
        for word in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("_"))
        for p in sorted(word.glob("*.wav"))
    ]


def count_reads(monkeypatch):
    """Count the clips the loader reads from disk."""
    calls = []
    real = sc.read_wav
    monkeypatch.setattr(sc, "read_wav", lambda path: calls.append(path) or real(path))
    return calls


def cache_files(root):
    return sorted(p.name for p in (root / sc.CACHE_DIR).iterdir()) if (root / sc.CACHE_DIR).is_dir() else []


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])  # 7 clips: chunks that divide it, that don't, and one past it
def test_streamed_features_equal_the_direct_computation(tmp_path, chunk):
    write_tree(tmp_path / "sc", words=("a", "b", "c", "d", "e", "f", "g"), per_word=1)
    paths = clip_paths(tmp_path / "sc")
    assert len(paths) == 7
    direct = log_mel(torch.from_numpy(np.stack([sc.read_wav(p) for p in paths]))).numpy()
    streamed = sc.clip_features(paths, 40, chunk=chunk)
    assert streamed.dtype == np.float32 and streamed.shape == (7, 1, 40, sc.FRAMES)
    np.testing.assert_allclose(streamed, direct, rtol=1e-6, atol=1e-5)
    for i, p in enumerate(paths):  # every clip in its own row, none shifted across a chunk boundary
        np.testing.assert_allclose(
            streamed[i], log_mel(torch.from_numpy(sc.read_wav(p))[None])[0].numpy(), rtol=1e-6, atol=1e-5
        )


@pytest.mark.parametrize("chunk", [2, 5, 1024])
def test_loader_equals_stacking_every_clip(tmp_path, monkeypatch, chunk):
    """The loader's output is what stacking every clip, one STFT and `normalise` gave before streaming."""
    write_tree(tmp_path / "sc", words=("no", "off", "yes"), per_word=5)  # 9 training clips, 3 test clips
    monkeypatch.setattr(sc, "CHUNK", chunk)
    d = load_dataset(choice(tmp_path, root=str(tmp_path / "sc"), n_mels=32), seed=0)
    testing = set((tmp_path / "sc" / "testing_list.txt").read_text().split())
    validation = set((tmp_path / "sc" / "validation_list.txt").read_text().split())
    rel = lambda p: f"{p.parent.name}/{p.name}"  # noqa: E731
    train = [p for p in clip_paths(tmp_path / "sc") if rel(p) not in testing | validation]
    test = [p for p in clip_paths(tmp_path / "sc") if rel(p) in testing]
    direct = lambda ps: log_mel(torch.from_numpy(np.stack([sc.read_wav(p) for p in ps])), 32).numpy()  # noqa: E731
    x_train, x_test = normalise(direct(train), direct(test))
    assert d.x_train.shape == (9, 1, 32, 101) and d.x_test.shape == (3, 1, 32, 101)
    np.testing.assert_allclose(d.x_train, x_train, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.x_test, x_test, rtol=1e-5, atol=1e-5)
    assert d.y_train.dtype == np.int64 and d.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_normalise_in_place_equals_normalise():
    g = np.random.default_rng(1)
    x_train, x_test = (g.normal(3.0, 2.0, (n, 2, 5, 7)).astype(np.float32) for n in (11, 4))
    want = normalise(x_train, x_test)
    got = normalise_in_place(x_train.copy(), x_test.copy(), chunk=3)
    for w, o in zip(want, got):
        assert o.dtype == np.float32
        np.testing.assert_allclose(o, w, rtol=1e-6, atol=1e-6)


def test_second_load_reads_the_cache_not_the_clips(tmp_path, monkeypatch):
    write_tree(tmp_path / "sc")
    cfg = choice(tmp_path, root=str(tmp_path / "sc"))
    first = load_dataset(cfg, seed=0)
    reads = count_reads(monkeypatch)
    second = load_dataset(cfg, seed=0)
    assert reads == []
    for a, b in (
        (first.x_train, second.x_train),
        (first.x_test, second.x_test),
        (first.y_train, second.y_train),
        (first.y_test, second.y_test),
    ):
        np.testing.assert_array_equal(a, b)
    assert second.num_classes == 2


def test_stale_cache_is_recomputed(tmp_path, monkeypatch):
    root = tmp_path / "sc"
    write_tree(root)
    cfg = choice(tmp_path, root=str(root))
    first = load_dataset(cfg, seed=0)
    reads = count_reads(monkeypatch)
    # A clip rewritten (same size): its features change, so everything is read again.
    clip = root / "yes" / "spk2_nohash_0.wav"
    rate, x = wavfile.read(clip)
    wavfile.write(clip, rate, (x // 4).astype(np.int16))
    os.utime(clip, ns=(clip.stat().st_atime_ns, clip.stat().st_mtime_ns + 10**9))
    edited = load_dataset(cfg, seed=0)
    assert len(reads) == 6 and not np.array_equal(edited.x_train, first.x_train)
    # A clip added.
    wavfile.write(root / "no" / "spk9_nohash_0.wav", rate, x)
    assert load_dataset(cfg, seed=0).x_train.shape[0] == 5 and len(reads) == 6 + 7
    # Other feature settings or another word list.
    assert load_dataset(choice(tmp_path, root=str(root), n_mels=32), seed=0).x_train.shape == (5, 1, 32, 101)
    assert len(reads) == 6 + 7 + 7
    assert load_dataset(choice(tmp_path, root=str(root), words=["yes", "no"]), seed=0).num_classes == 2
    assert len(reads) == 6 + 7 + 7 + 7
    # ... and the first settings again: cached since the clip was added.
    load_dataset(cfg, seed=0)
    assert len(reads) == 6 + 7 + 7 + 7


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_cache_is_recomputed_and_replaced(tmp_path, monkeypatch, damage):
    root = tmp_path / "sc"
    write_tree(root)
    cfg = choice(tmp_path, root=str(root))
    first = load_dataset(cfg, seed=0)
    [name] = cache_files(root)
    path = root / sc.CACHE_DIR / name
    raw = path.read_bytes()
    path.write_bytes({"truncated": raw[: len(raw) // 2], "garbage": b"not a cache" * 100, "empty": b""}[damage])
    reads = count_reads(monkeypatch)
    again = load_dataset(cfg, seed=0)
    assert len(reads) == 6
    np.testing.assert_array_equal(again.x_train, first.x_train)
    assert cache_files(root) == [name] and path.stat().st_size == len(raw)  # replaced by a whole cache
    load_dataset(cfg, seed=0)
    assert len(reads) == 6


def test_a_write_cut_short_leaves_no_cache(tmp_path, monkeypatch):
    """The cache is written beside its name and renamed: a writer stopped midway leaves nothing a load
    would read, and the next load computes and caches the features."""
    root = tmp_path / "sc"
    write_tree(root)
    cfg = choice(tmp_path, root=str(root))

    def killed(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(sc.np, "savez", killed)
        with pytest.raises(KeyboardInterrupt):
            load_dataset(cfg, seed=0)
    assert cache_files(root) == []
    load_dataset(cfg, seed=0)
    reads = count_reads(monkeypatch)
    load_dataset(cfg, seed=0)
    assert reads == [] and len(cache_files(root)) == 1


def test_unwritable_cache_warns_and_still_loads(tmp_path):
    write_tree(tmp_path / "sc")
    (tmp_path / "sc" / sc.CACHE_DIR).write_text("a file where the cache folder would go")
    with pytest.warns(UserWarning, match="cannot cache Speech Commands features"):
        d = load_dataset(choice(tmp_path, root=str(tmp_path / "sc")), seed=0)
    assert d.x_train.shape == (4, 1, 40, 101) and d.num_classes == 2  # and the cache file is not a word


def test_progress_bar_on_stderr_only_for_many_clips(tmp_path, monkeypatch, capsys):
    write_tree(tmp_path / "sc")
    load_dataset(choice(tmp_path, root=str(tmp_path / "sc")), seed=0)
    assert "speech_commands features" not in capsys.readouterr().err
    monkeypatch.setattr(sc, "PROGRESS_MIN_CLIPS", 6)
    load_dataset(choice(tmp_path, root=str(tmp_path / "sc"), n_mels=32), seed=0)
    err = capsys.readouterr().err
    assert "speech_commands features" in err and "6/6" in err
