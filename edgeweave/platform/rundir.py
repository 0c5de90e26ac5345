"""The run directory: resolved config, metrics, final weights; nothing is written outside it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from edgeweave.platform.config import ExperimentConfig, dump_config
from edgeweave.platform.errors import UserError
from edgeweave.platform.flat import FlatLayout


def create_run_dir(cfg: ExperimentConfig) -> Path:
    """runs/<name>-<timestamp>/, made fresh (a suffix keeps two runs in one second apart)."""
    out = Path(cfg.logging.out_dir).expanduser()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for i in range(1000):
            path = out / (f"{cfg.name}-{stamp}" + (f"-{i}" if i else ""))
            try:
                path.mkdir()
            except FileExistsError:
                continue
            (path / "config.yaml").write_text(dump_config(cfg))
            return path
    except OSError as e:
        raise UserError(f"logging.out_dir = {cfg.logging.out_dir!r}: cannot write there ({e.strerror})") from None
    raise UserError(f"logging.out_dir = {cfg.logging.out_dir!r}: too many runs named {cfg.name} this second")


def save_weights(path: Path, layout: FlatLayout, flat: np.ndarray) -> None:
    """The final model as a safetensors state dict (loads without executing code)."""
    tensors = {n: t.numpy() for n, t in layout.state_dict(flat).items()}
    save_file(tensors, str(path))
