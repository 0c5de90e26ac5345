"""The run directory: resolved config, metrics, final weights; nothing is written outside it."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from safetensors.torch import save_file
from torch import nn

from edgeweave.platform.config.schema import ExperimentConfig, dump_config
from edgeweave.platform.core.errors import UserError
from edgeweave.platform.models.flat import FlatLayout
from edgeweave.platform.run.checkpoint import replace_durably

LOGS = ("metrics.jsonl", "devices.jsonl")  # the run directory's per-round logs, appended to round by round


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
            text = dump_config(cfg)  # what --resume reads back: on disk before the run goes on

            def write(tmp: Path, text: str = text) -> None:
                tmp.write_text(text)

            replace_durably(path / "config.yaml", write)
            return path
    except OSError as e:
        raise UserError(f"logging.out_dir = {cfg.logging.out_dir!r}: cannot write there ({e.strerror})") from None
    raise UserError(f"logging.out_dir = {cfg.logging.out_dir!r}: too many runs named {cfg.name} this second")


def save_weights(path: Path, model: nn.Module, flat: np.ndarray) -> None:
    """The final model's full state dict as safetensors (loads without executing code).

    Written beside `path` and renamed over it (`replace_durably`), so a reader or a crash never sees half a file.
    """
    FlatLayout(model).load(model, flat)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    replace_durably(path, lambda tmp: save_file(tensors, str(tmp)))
