"""Speech Commands v2 keyword spotting, as log-mel spectrograms computed once with torch.stft.

The folder layout is the data set's own: one folder per word of 1 s, 16 kHz mono WAV files,
`validation_list.txt` and `testing_list.txt` naming files relative to the root, and a
`_background_noise_` folder that is not a word. Files on the testing list form the test split;
all others but those on the validation list form the training split. Clips are padded or cut to
1 s; features are log(mel power + 1e-6) with 40 mel bands, 30 ms windows and 10 ms hops.

The full set (about 96,000 clips read) does not fit in memory as audio, so clips are read and
transformed `CHUNK` at a time into one preallocated float32 array, and the features are cached
under `<root>/_edgeweave_cache/`, keyed by a hash of everything that determines them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tarfile
import time
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
from pydantic import Field

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Params
from edgeweave.platform.data.base import DATASETS, ArrayData, normalise_in_place

if TYPE_CHECKING:
    import torch

URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
RATE = 16000
N_FFT, HOP = 480, 160  # 30 ms windows, 10 ms hops
FRAMES = 1 + RATE // HOP  # torch.stft's centred frames of a 1 s clip
CHUNK = 1024  # clips read and transformed at a time: 64 MB of audio, a few hundred MB of spectra
CACHE_DIR = "_edgeweave_cache"  # starts with "_", so it is never taken for a word folder
CACHE_FORMAT = 1  # bump when the features or the file's layout change
PROGRESS_MIN_CLIPS = 4096  # a progress bar only where computing takes a while


class SpeechCommandsParams(Params):
    root: str = "data/speech_commands"  # Speech Commands v2 in its own layout (relative: to the working dir)
    download: bool = False  # fetch and unpack the v0.02 archive when root has no testing_list.txt
    words: Optional[list[str]] = None  # null: every word folder
    n_mels: int = Field(40, ge=8)  # log-mel bands: a clip is 1 x n_mels x 101 frames (30 ms windows, 10 ms hops)


def mel_filterbank(n_mels: int, n_fft: int, rate: int = RATE) -> torch.Tensor:
    """Triangular filters evenly spaced on the mel scale (HTK formula), shape (n_mels, n_fft // 2 + 1)."""
    import torch  # here, not at import: a config is validated without torch

    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(0.0), mel(rate / 2), n_mels + 2))
    freqs = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32))


def log_mel(waves: torch.Tensor, n_mels: int = 40, n_fft: int = N_FFT, hop: int = HOP) -> torch.Tensor:
    """(N, samples) waveforms to (N, 1, n_mels, frames) log-mel spectrograms."""
    import torch

    spec = torch.stft(waves, n_fft=n_fft, hop_length=hop, window=torch.hann_window(n_fft), return_complex=True)
    power = spec.abs() ** 2  # (N, n_fft // 2 + 1, frames)
    return torch.log(mel_filterbank(n_mels, n_fft) @ power + 1e-6)[:, None]


def read_wav(path: Path) -> np.ndarray:
    """A mono clip as float32 in [-1, 1], padded with zeros or cut to 1 s."""
    from scipy.io import wavfile

    rate, x = wavfile.read(path)
    if rate != RATE:
        raise UserError(f"data.root: {path} is sampled at {rate} Hz; Speech Commands clips are {RATE} Hz")
    if x.ndim > 1:
        x = x.mean(axis=1)
    x = x.astype(np.float32) / (32768.0 if np.issubdtype(x.dtype, np.integer) else 1.0)
    out = np.zeros(RATE, np.float32)
    out[: min(len(x), RATE)] = x[:RATE]
    return out


def clip_features(paths: Sequence[Path], n_mels: int, chunk: int = CHUNK, bar: Any = None) -> np.ndarray:
    """Log-mel features of the clips at `paths`, (N, 1, n_mels, FRAMES) float32, read `chunk` at a time.

    Equal to `log_mel` of all clips stacked, without ever holding more than one chunk as audio.
    """
    import torch

    out = np.empty((len(paths), 1, n_mels, FRAMES), np.float32)
    waves = np.empty((min(chunk, len(paths)), RATE), np.float32)
    for start in range(0, len(paths), chunk):
        part = paths[start : start + chunk]
        for i, path in enumerate(part):
            waves[i] = read_wav(path)
        out[start : start + len(part)] = log_mel(torch.from_numpy(waves[: len(part)]), n_mels).numpy()
        if bar is not None:
            bar.update(len(part))
    return out


def features_key(root: Path, clips: dict[str, list[str]], words: Sequence[str], n_mels: int) -> str:
    """A hash of what the features depend on: feature settings, words, and every clip's split, path, size
    and modification time (an edited, added or removed clip makes a cached set stale)."""
    h = hashlib.sha256(
        json.dumps(
            {
                "format": CACHE_FORMAT,
                "rate": RATE,
                "n_fft": N_FFT,
                "hop": HOP,
                "window": "hann",
                "mel": "htk",
                "floor": 1e-6,
                "n_mels": n_mels,
                "words": list(words),
            },
            sort_keys=True,
        ).encode()
    )
    for split, rels in clips.items():
        h.update(f"\n[{split}]".encode())
        for rel in rels:
            st = (root / rel).stat()
            h.update(f"\n{rel}\t{st.st_size}\t{st.st_mtime_ns}".encode())
    return h.hexdigest()


def read_cache(path: Path, key: str, shapes: dict[str, tuple[int, ...]]) -> Optional[dict[str, np.ndarray]]:
    """The cached features if `path` holds a whole cache for `key` with the expected shapes, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as f:
            if str(f["key"]) != key:
                return None
            feats = {s: f[s] for s in shapes}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # truncated, corrupt or foreign
        return None
    if any(feats[s].shape != shape or feats[s].dtype != np.float32 for s, shape in shapes.items()):
        return None
    return feats


def write_cache(path: Path, key: str, feats: dict[str, np.ndarray]) -> None:
    """Store `feats` at `path`: written beside it and renamed into place, so a reader never sees half a
    file. A root we cannot write to only costs the cache, with a warning."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)
        for old in path.parent.glob(".*.tmp"):  # left by a writer killed an hour or more ago
            with contextlib.suppress(OSError):
                if time.time() - old.stat().st_mtime > 3600:
                    old.unlink()
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), **feats)  # type: ignore[arg-type]  # numpy's stub: **feats vs allow_pickle
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(
            f"data.root: cannot cache Speech Commands features at {path} ({e}); "
            "they will be computed again on the next load",
            stacklevel=3,
        )
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


@DATASETS.register("speech_commands", SpeechCommandsParams)
class SpeechCommands:
    """Keyword spotting: one class per word folder (or the configured `words`)."""

    def __init__(self, params: SpeechCommandsParams) -> None:
        self.params = params

    def _fetch(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        archive = root / "speech_commands_v0.02.tar.gz"
        urllib.request.urlretrieve(URL, archive)
        with tarfile.open(archive) as tar:
            tar.extractall(root, filter="data")
        archive.unlink()

    def load(self, seed: int) -> ArrayData:
        root = Path(self.params.root).expanduser()
        if not (root / "testing_list.txt").is_file() and self.params.download:
            self._fetch(root)
        if not (root / "testing_list.txt").is_file():
            raise UserError(
                f"data.root = {self.params.root!r}: Speech Commands not found (looked for "
                f"{root / 'testing_list.txt'}); set data.download=true, or fetch {URL} and unpack it "
                "there, or write a generated stand-in there "
                "(edgeweave.platform.data.speech_synth.generate)"
            )
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
        words = self.params.words or found
        missing = [w for w in words if w not in found]
        if missing:
            raise UserError(f"data.words = {words}: no folder {missing[0]!r} under {root}; found: {', '.join(found)}")
        listed = lambda name: set((root / name).read_text().split()) if (root / name).is_file() else set()  # noqa: E731
        testing, validation = listed("testing_list.txt"), listed("validation_list.txt")
        clips: dict[str, list[str]] = {"train": [], "test": []}  # paths relative to the root
        labels: dict[str, list[int]] = {"train": [], "test": []}
        for label, word in enumerate(words):
            for wav in sorted((root / word).glob("*.wav")):
                rel = f"{word}/{wav.name}"
                split = "test" if rel in testing else None if rel in validation else "train"
                if split:
                    clips[split].append(rel)
                    labels[split].append(label)
        if not clips["train"] or not clips["test"]:
            raise UserError(f"data.root = {self.params.root!r}: the training or testing split has no clips")
        feats = self._features(root, clips, words)
        x_train, x_test = normalise_in_place(feats["train"], feats["test"])
        speakers = [rel.rsplit("/", 1)[-1].split("_nohash_")[0] for rel in clips["train"]]  # SPEAKER_nohash_N.wav
        ids = {s: i for i, s in enumerate(sorted(set(speakers)))}
        return ArrayData(
            x_train,
            np.array(labels["train"], np.int64),
            x_test,
            np.array(labels["test"], np.int64),
            num_classes=len(words),
            owners=np.array([ids[s] for s in speakers], np.int64),
        )

    def _features(self, root: Path, clips: dict[str, list[str]], words: Sequence[str]) -> dict[str, np.ndarray]:
        """Each split's log-mel features: from the cache when it matches the clips, else computed and cached."""
        n_mels = self.params.n_mels
        key = features_key(root, clips, words, n_mels)
        path = root / CACHE_DIR / f"logmel-{key[:24]}.npz"
        feats = read_cache(path, key, {s: (len(rels), 1, n_mels, FRAMES) for s, rels in clips.items()})
        if feats is None:
            from tqdm.auto import tqdm

            total = sum(len(rels) for rels in clips.values())
            with tqdm(
                total=total,
                desc="speech_commands features",
                unit="clip",
                file=sys.stderr,
                disable=total < PROGRESS_MIN_CLIPS,
            ) as bar:
                feats = {s: clip_features([root / r for r in rels], n_mels, CHUNK, bar) for s, rels in clips.items()}
            write_cache(path, key, feats)
        return feats
