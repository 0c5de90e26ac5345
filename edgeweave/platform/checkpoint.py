"""Run checkpoints: everything a run's future depends on, loadable without executing code.

A checkpoint is a directory of two files: `state.safetensors` (the global weights and the
strategy's arrays, e.g. task plans) and `state.json` (the next round, the virtual clock, the
FLOPs so far, the metrics history, and a fingerprint of the config). Every random draw derives
from (seed, round, device), so nothing else is needed for a resumed run to equal an
uninterrupted one. Files are written beside their final names and renamed into place, so an
interrupted save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from edgeweave.platform.errors import UserError

FORMAT = "edgeweave-checkpoint/1"


@dataclass
class RunState:
    """A run between two rounds."""

    next_round: int
    weights: np.ndarray
    clock: float
    total_flops: float
    strategy: dict[str, np.ndarray] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def fingerprint(config_text: str) -> str:
    """What ties a checkpoint to its run: the resolved config, minus where outputs go."""
    lines = [line for line in config_text.splitlines() if not line.lstrip().startswith(("out_dir:", "progress:"))]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def save_checkpoint(path: Path, state: RunState, config_fingerprint: str) -> Path:
    """Write the checkpoint directory `path` (replaced whole if it exists)."""
    path.mkdir(parents=True, exist_ok=True)
    arrays = {"weights": np.ascontiguousarray(state.weights, np.float32)}
    arrays.update({f"strategy/{k}": np.ascontiguousarray(v) for k, v in state.strategy.items()})
    meta = {"format": FORMAT, "config": config_fingerprint, "next_round": state.next_round, "clock": state.clock,
            "total_flops": state.total_flops, "history": state.history}
    for name, write in (("state.safetensors", lambda p: save_file(arrays, str(p))),
                        ("state.json", lambda p: p.write_text(json.dumps(meta)))):
        tmp = path / f".{name}.tmp"
        write(tmp)
        os.replace(tmp, path / name)
    return path


def load_checkpoint(path: Path, config_fingerprint: str) -> RunState:
    """Read a checkpoint; a missing, corrupt or foreign one is a UserError naming it."""
    try:
        meta = json.loads((path / "state.json").read_text())
        arrays = load_file(str(path / "state.safetensors"))
    except FileNotFoundError:
        raise UserError(f"checkpoint = {str(path)!r}: no state.json and state.safetensors there") from None
    except Exception as e:  # noqa: BLE001 - any parse failure means the files are damaged
        raise UserError(f"checkpoint = {str(path)!r}: unreadable ({type(e).__name__}); "
                        "expected an edgeweave checkpoint") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "weights" not in arrays:
        raise UserError(f"checkpoint = {str(path)!r}: not an edgeweave checkpoint (format {FORMAT})")
    if meta.get("config") != config_fingerprint:
        raise UserError(f"checkpoint = {str(path)!r}: written by a run with another config; "
                        "resume only with the config it was written for")
    strategy = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("strategy/")}
    return RunState(int(meta["next_round"]), arrays["weights"], float(meta["clock"]), float(meta["total_flops"]),
                    strategy, list(meta["history"]))
