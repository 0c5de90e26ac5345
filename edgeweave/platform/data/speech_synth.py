"""A generated stand-in for Speech Commands v2 in its own layout: spoken-word-like clips that can be learned.

Each word is a fixed sequence of one to three syllables drawn from a few shared sounds: a vowel (a voiced tone
with harmonics shaped by two formants), a pitch glide, and sometimes an opening noise burst. Each speaker (the
clip name's hash, three clips a speaker as in the real set) says every word with their own pitch, vocal-tract
length and speaking rate; every clip adds its own onset, loudness, pitch wobble, length and background noise.
So the class is in the sequence of formants and glides, not in any one band, and a model has to generalise
over speakers to find it. The tree has
the data set's word folders, `SPEAKER_nohash_N.wav` names, testing and validation lists, and a
`_background_noise_` folder; `speech_commands` loads it as it loads the real one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from edgeweave.platform.core.errors import UserError

RATE = 16000
WORDS = (
    "backward bed bird cat dog down eight five follow forward four go happy house learn left marvin nine no "
    "off on one right seven sheila six stop three tree two up visual wow yes zero"
).split()
MARKER = ".edgeweave-generated.json"  # written last: its presence means the tree is complete
LEGACY_MARKER = ".edgeweave-bench.json"  # what an earlier version of the generator (plain tones) left
HARMONICS = 12
VOWELS = ((280, 2250), (400, 1900), (700, 1200), (450, 850), (320, 900))  # (F1, F2) Hz: i, e, a, o, u
GLIDES = ((1.0, 1.25), (1.25, 0.9), (1.0, 1.0))  # pitch at a syllable's start and end over its base: rise, fall, flat
BURSTS = (0.0, 0.0, 3000.0, 4500.0)  # a syllable's opening noise band, none half of the time


def word_pattern(word: int, seed: int) -> list[dict[str, float]]:
    """The syllables of word number `word`, drawn from shared vowels, glides and bursts, so that words share
    sounds and differ in their order: duration (s), pitch glide (Hz), two formants (Hz), burst band (Hz)."""
    g = np.random.default_rng([seed, 7919, word])
    syllables = []
    for _ in range(int(g.integers(1, 4))):
        (f1, f2), (a, b) = VOWELS[g.integers(len(VOWELS))], GLIDES[g.integers(len(GLIDES))]
        syllables.append(
            {
                "seconds": g.uniform(0.12, 0.24),
                "f0_start": 130 * a,
                "f0_end": 130 * b,
                "f1": f1,
                "f2": f2,
                "burst": BURSTS[g.integers(len(BURSTS))],
            }
        )
    return syllables


def speaker_voice(speaker: int, seed: int) -> dict[str, float]:
    """One speaker's pitch factor, formant (vocal-tract) factor and speaking rate."""
    g = np.random.default_rng([seed, 104729, speaker])
    return {"pitch": g.uniform(0.7, 1.6), "formants": g.uniform(0.85, 1.2), "rate": g.uniform(0.75, 1.25)}


def clip(pattern: Sequence[dict[str, float]], voice: dict[str, float], g: np.random.Generator) -> np.ndarray:
    """One utterance of a word by a voice, at a random onset within the clip (one second, one in ten shorter),
    with background noise."""
    parts = []
    for s in pattern:
        n = int(s["seconds"] / voice["rate"] * RATE)
        t = np.arange(n) / n
        f0 = voice["pitch"] * (s["f0_start"] + (s["f0_end"] - s["f0_start"]) * t) * (1 + 0.02 * g.standard_normal())
        phase = 2 * np.pi * np.cumsum(f0) / RATE
        k = np.arange(1, HARMONICS + 1)[:, None]
        centre = f0.mean() * k
        gain = sum(np.exp(-(((centre - voice["formants"] * s[f]) / 150.0) ** 2)) for f in ("f1", "f2")) + 0.03
        voiced = (gain * np.sin(k * phase[None, :])).sum(axis=0) * np.hanning(n)
        if s["burst"]:  # a band of noise opening the syllable (a fricative-like onset)
            m = n // 4
            noise = np.fft.rfft(g.standard_normal(m))
            freqs = np.fft.rfftfreq(m, 1 / RATE)
            noise[np.abs(freqs - voice["formants"] * s["burst"]) > 800] = 0
            voiced[:m] += 2.0 * np.fft.irfft(noise, m) * np.hanning(m)
        parts += [voiced, np.zeros(int(g.uniform(0.02, 0.06) * RATE))]
    n = RATE if g.random() < 0.9 else int(g.integers(RATE * 3 // 4, RATE))  # some clips shorter, as in the real set
    word = np.concatenate(parts)[:n]
    word /= np.abs(word).max() + 1e-9
    x = 0.1 * g.uniform(0.3, 2.0) * g.standard_normal(n)
    start = int(g.integers(0, n - len(word) + 1))
    x[start : start + len(word)] += g.uniform(0.2, 0.9) * word
    return np.clip(x, -1, 1)


def generate(root: Path, counts: dict[str, int], words: Sequence[str] = WORDS, seed: int = 0) -> bool:
    """Write the tree under `root` with `counts` clips per split (train, validation, test), words taking turns;
    False when a complete tree of the same spec is already there. Refuses to replace what it did not write."""
    from scipy.io import wavfile

    spec = {"version": 3, "words": list(words), "seed": seed, **counts}
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return False
    if root.exists() and any(root.iterdir()):
        if not any((root / name).exists() for name in (MARKER, LEGACY_MARKER, ".edgeweave-partial")):
            raise UserError(
                f"data.root = {str(root)!r}: holds files this generator did not write; "
                "allowed: an empty folder, a new one, or one it generated"
            )
        shutil.rmtree(root)  # an unfinished or different generated tree
    root.mkdir(parents=True)
    (root / ".edgeweave-partial").touch()
    g = np.random.default_rng(seed)
    total = sum(counts.values())
    order = g.permutation(total // 3 + 1)  # lists hold whole speakers, as the real set's hashing does
    test_speakers = set(order[: counts.get("test", 0) // 3].tolist())
    validation_speakers = set(
        order[len(test_speakers) : len(test_speakers) + counts.get("validation", 0) // 3].tolist()
    )
    patterns = [word_pattern(w, seed) for w in range(len(words))]
    testing, validation = [], []
    for folder in words:
        (root / folder).mkdir()
    for i in range(total):  # clip i: word i % len(words), speaker i // 3
        word, speaker = i % len(words), i // 3
        x = clip(patterns[word], speaker_voice(speaker, seed), g)
        name = f"{words[word]}/{hashlib.blake2s(str(speaker).encode(), digest_size=4).hexdigest()}_nohash_{i % 3}.wav"
        wavfile.write(root / name, RATE, (x * 32767).astype(np.int16))
        if speaker in test_speakers:
            testing.append(name)
        elif speaker in validation_speakers:
            validation.append(name)
    (root / "_background_noise_").mkdir()
    for k in range(2):
        wavfile.write(
            root / "_background_noise_" / f"noise_{k}.wav",
            RATE,
            (0.1 * g.standard_normal(5 * RATE) * 32767).astype(np.int16),
        )
    (root / "testing_list.txt").write_text("\n".join(sorted(testing)) + "\n")
    (root / "validation_list.txt").write_text("\n".join(sorted(validation)) + "\n")
    (root / "README.md").write_text("Generated spoken-word-like clips in the layout of Speech Commands v0.02.\n")
    marker.write_text(json.dumps(spec))
    (root / ".edgeweave-partial").unlink()
    return True
