"""State a device keeps between rounds (SCAFFOLD's control variate, a plugin's own), in one store the driver owns.

A method declares its per-device arrays (`Rules.device_arrays`: name -> elements). The store holds, per
name, one float32 row per device of the population, and which devices have written theirs. The driver
sends a round's devices their rows with their jobs and writes back what they return once the round is
folded, so a share trained again after a lost worker writes the same rows, and a resumed run reads them
from the checkpoint. Rows a device never wrote read as absent (the method starts it from zeros).

Rows live in memory while the whole store takes at most a quarter of the memory free at the start, else
in a memory-mapped file on disk; a store the disk cannot hold either is refused before the run starts.
Nothing here imports torch.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Optional, cast

import numpy as np

from edgeweave.platform.core.errors import UserError

SPILL = "edgeweave-state-"  # a store's folder on disk: SPILL<pid of the process that holds it>-<random>
MEMORY_SHARE = 0.25  # of the memory free at the start, the most the store takes before it goes to disk


@dataclass(frozen=True)
class OnDisk:
    """An array in a .npy file on this node, passed between processes by its path: a store on disk goes to and
    from a checkpoint without a copy through memory (the driver, the run loop and the checkpoint share a node)."""

    path: str

    def array(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")


def as_array(value: Any) -> np.ndarray:
    """The array itself, read through its file when it is `OnDisk`."""
    return value.array() if isinstance(value, OnDisk) else np.asarray(value)


def free_memory() -> float:
    """Bytes of physical memory free now."""
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def place(
    population: int,
    sizes: dict[str, int],
    what: str,
    memory: Optional[float] = None,
    folder: Optional[str] = None,
    checkpoints: Optional[str] = None,
) -> Optional[str]:
    """Where a store of these sizes goes: None for memory, else the folder on disk that holds it. A store that
    fits neither, or whose checkpoints `checkpoints` (the run's output folder) cannot hold (two copies while a
    new one replaces the old), is a UserError naming `what` (the method), the sizes and the limits."""
    need = 4.0 * population * sum(sizes.values())
    memory = MEMORY_SHARE * free_memory() if memory is None else memory
    values = f"{population:,} devices x {sum(sizes.values()):,} float32 values"
    base = None if need <= memory else folder or tempfile.gettempdir()
    wants: dict[int, tuple[float, str]] = {}  # disk -> (bytes wanted there, a folder on it)
    if base is not None:
        wants[os.stat(base).st_dev] = (need, base)
    if checkpoints is not None:
        at = existing(checkpoints)
        more, _ = wants.get(os.stat(at).st_dev, (0.0, at))
        wants[os.stat(at).st_dev] = (more + 2 * need, at)
    for wanted, where in wants.values():
        disk = shutil.disk_usage(where).free
        if wanted > disk:
            held = "memory" if base is None else f"memory ({size(memory)}) or on disk"
            raise UserError(
                f"{what}: its device state needs {size(need)} ({values}), held in {held} and twice in "
                f"the checkpoints: {size(wanted)} at {where}, which has {size(disk)} free; use fewer "
                "devices (devices.count) or a smaller model"
            )
    return base


def remove_stale(base: str) -> None:
    """Remove the stores on disk under `base` whose process is gone (a run killed, or a driver actor Ray killed)."""
    for entry in os.scandir(base):
        pid = entry.name[len(SPILL) :].split("-", 1)[0]
        if entry.name.startswith(SPILL) and pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(entry.path, ignore_errors=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def size(n: float) -> str:
    """Bytes as a person reads them: 605 GB, 1.8 TB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


def existing(path: str) -> str:
    """The path, or its nearest folder that exists (an output folder not made yet)."""
    p = os.path.abspath(path)
    while not os.path.exists(p):
        p = os.path.dirname(p)
    return p


class DeviceStates:
    """Per-device named float32 rows over a population, in memory or memory-mapped on disk."""

    def __init__(
        self,
        population: int,
        sizes: dict[str, int],
        what: str,
        memory: Optional[float] = None,
        folder: Optional[str] = None,
    ) -> None:
        """`sizes`: elements per device of each named array; `what` names the method in a refusal;
        `memory`: bytes the store may take in memory (default a quarter of what is free); `folder`: where a
        store too large for memory goes (default the system's temporary folder)."""
        self.population = population
        self.sizes = dict(sizes)
        self.seen = np.zeros(population, bool)
        base = place(population, self.sizes, what, memory, folder)
        self._spill: Optional[tempfile.TemporaryDirectory] = None
        if base is None:
            self.rows: dict[str, np.ndarray] = {
                name: np.zeros((population, size), np.float32) for name, size in self.sizes.items()
            }
            return
        remove_stale(base)
        self._spill = tempfile.TemporaryDirectory(prefix=f"{SPILL}{os.getpid()}-", dir=base)
        self.rows = {
            name: np.lib.format.open_memmap(
                os.path.join(self._spill.name, f"{name}.npy"), "w+", np.float32, (population, size)
            )
            for name, size in self.sizes.items()
        }

    def close(self) -> None:
        """Remove a store's file from the disk (a run's end); a store killed with its process is removed by
        the next store made in the same folder."""
        if self._spill is not None:
            self.rows = {}
            self._spill.cleanup()

    @property
    def on_disk(self) -> bool:
        return self._spill is not None

    def get(self, device: int) -> dict[str, np.ndarray]:
        """A copy of the device's arrays; empty when it has never written any."""
        if not self.seen[device]:
            return {}
        return {name: np.array(rows[device]) for name, rows in self.rows.items()}

    def put(self, device: int, arrays: dict[str, np.ndarray]) -> None:
        """Write a device's arrays: every declared name, each of its declared size."""
        if set(arrays) != set(self.sizes):
            raise ValueError(
                f"device {device}: state arrays {sorted(arrays)}, the method declared {sorted(self.sizes)}"
            )
        for name, values in arrays.items():
            values = np.asarray(values, np.float32).reshape(-1)
            if values.size != self.sizes[name]:
                raise ValueError(
                    f"device {device}: state array {name!r} has {values.size} elements, the method "
                    f"declared {self.sizes[name]}"
                )
            self.rows[name][device] = values
        self.seen[device] = True

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds: every row (on disk: its file, flushed) and which devices wrote theirs."""
        if self._spill is None:
            return {"seen": self.seen, **self.rows}
        spilled = cast("dict[str, np.memmap]", self.rows)  # a store on disk: every row is memory-mapped
        for rows in spilled.values():
            rows.flush()
        return {"seen": self.seen.copy(), **{name: OnDisk(cast(str, rows.filename)) for name, rows in spilled.items()}}

    def load_state(self, arrays: dict[str, Any]) -> None:
        """Take back what `state` returned, or a checkpoint's files (rows copied in: a spilled store stays on disk)."""
        missing = sorted({"seen", *self.rows} - set(arrays))
        if missing:
            raise UserError(
                f"checkpoint: its device state lacks {', '.join(missing)} (damaged, or written for another "
                "method); start a new run"
            )
        self.seen = as_array(arrays["seen"]).astype(bool)
        for name, rows in self.rows.items():
            rows[...] = as_array(arrays[name])
