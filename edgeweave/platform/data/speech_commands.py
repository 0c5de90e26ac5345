"""Speech Commands v2 keyword spotting, as log-mel spectrograms computed once with torch.stft.

The folder layout is the data set's own: one folder per word of 1 s, 16 kHz mono WAV files,
`validation_list.txt` and `testing_list.txt` naming files relative to the root, and a
`_background_noise_` folder that is not a word. Files on the testing list form the test split;
all others but those on the validation list form the training split. Clips are padded or cut to
1 s; features are log(mel power + 1e-6) with 40 mel bands, 30 ms windows and 10 ms hops.
"""

from __future__ import annotations

import tarfile
import urllib.request
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from pydantic import Field

from edgeweave.platform.data.base import DATASETS, ArrayData, normalise
from edgeweave.platform.errors import UserError
from edgeweave.platform.registry import Params

URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
RATE = 16000


class SpeechCommandsParams(Params):
    root: str = "data/speech_commands"
    download: bool = False
    words: Optional[list[str]] = None  # None: every word folder
    n_mels: int = Field(40, ge=8)


def mel_filterbank(n_mels: int, n_fft: int, rate: int = RATE) -> torch.Tensor:
    """Triangular filters evenly spaced on the mel scale (HTK formula), shape (n_mels, n_fft // 2 + 1)."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    edges = hz(np.linspace(mel(0.0), mel(rate / 2), n_mels + 2))
    freqs = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    return torch.from_numpy(np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32))


def log_mel(waves: torch.Tensor, n_mels: int = 40, n_fft: int = 480, hop: int = 160) -> torch.Tensor:
    """(N, samples) waveforms to (N, 1, n_mels, frames) log-mel spectrograms."""
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
            raise UserError(f"data.root = {self.params.root!r}: Speech Commands not found (looked for "
                            f"{root / 'testing_list.txt'}); set data.download=true, or fetch {URL} and unpack it there")
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
        words = self.params.words or found
        missing = [w for w in words if w not in found]
        if missing:
            raise UserError(f"data.words = {words}: no folder {missing[0]!r} under {root}; found: {', '.join(found)}")
        listed = lambda name: set((root / name).read_text().split()) if (root / name).is_file() else set()  # noqa: E731
        testing, validation = listed("testing_list.txt"), listed("validation_list.txt")
        splits: dict[str, tuple[list[np.ndarray], list[int]]] = {"train": ([], []), "test": ([], [])}
        for label, word in enumerate(words):
            for wav in sorted((root / word).glob("*.wav")):
                rel = f"{word}/{wav.name}"
                split = "test" if rel in testing else None if rel in validation else "train"
                if split:
                    splits[split][0].append(read_wav(wav))
                    splits[split][1].append(label)
        if not splits["train"][1] or not splits["test"][1]:
            raise UserError(f"data.root = {self.params.root!r}: the training or testing split has no clips")
        feats = {k: log_mel(torch.from_numpy(np.stack(v[0])), self.params.n_mels).numpy() for k, v in splits.items()}
        x_train, x_test = normalise(feats["train"], feats["test"])
        return ArrayData(x_train, np.array(splits["train"][1], np.int64), x_test, np.array(splits["test"][1], np.int64),
                         num_classes=len(words))
