"""Counter-based random numbers: a pure function of (seed, device ids, slot, stream).

Resource traces use these instead of a stateful generator, so any device's state at any time
is computed in O(1) on any worker, for a population of any size.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_K = [np.uint64(k) for k in (0x9E3779B97F4A7C15, 0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB)]


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


_MASK = (1 << 64) - 1


def _mix_int(x: int) -> int:
    """`_mix` on one Python int: a device's timeline asks about one device at a time, where NumPy's
    per-call overhead is most of the cost."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _uniform_one(seed: int, device: int, slot: int, stream: int) -> float:
    x = _mix_int((seed * int(_K[0]) + stream * int(_K[3])) & _MASK)
    x = _mix_int(x ^ ((device * int(_K[1])) & _MASK))
    x = _mix_int(x ^ (((slot & _MASK) * int(_K[2])) & _MASK))
    return (x >> 11) * 2.0**-53


def uniform(seed: int, ids: np.ndarray, slot, stream: int) -> np.ndarray:
    """Uniform [0, 1) draws, one per (device id, slot) pair after broadcasting."""
    ids = np.asarray(ids)
    if ids.size == 1 and np.ndim(slot) == 0:  # the same numbers, without NumPy's overhead
        return np.full(ids.shape, _uniform_one(int(seed), int(ids.reshape(-1)[0]), int(slot), int(stream)))
    with np.errstate(over="ignore"):
        x = _mix(np.asarray(seed, np.uint64) * _K[0] + np.uint64(stream) * _K[3])
        x = _mix(x ^ (np.asarray(ids).astype(np.uint64) * _K[1]))
        x = _mix(x ^ (np.asarray(slot).astype(np.int64).astype(np.uint64) * _K[2]))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53
