"""Run checkpoints: everything a run's future depends on, loadable without executing code.

A checkpoint is one file, `state.safetensors`, in the run's checkpoint directory: its tensors are
the global weights and the strategy's arrays (e.g. task plans), its header metadata holds the
rest as JSON (the next round, the virtual clock, the FLOPs so far, the metrics history, the device
workers lost so far, in async aggregation the devices in flight with the model versions they
train on, and a fingerprint of the config and of the content of the files it names: a front, a
trace). Every random draw derives from (seed, round, device), so nothing else is needed for a
resumed run to equal an uninterrupted one. The file is written beside its final name, synced,
and renamed into place (`replace_durably`): a run killed mid-save, or a machine that loses power,
keeps the previous checkpoint whole, and weights and round can never come from two different saves.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import yaml
from safetensors import safe_open
from safetensors.numpy import save_file

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.run.device_state import OnDisk, as_array

FORMAT = "edgeweave-checkpoint/3"  # 3: fingerprints leave ray.* out, and hold the workers lost so far
STATE = "state.safetensors"
META = "edgeweave"  # the header metadata key holding the JSON
# Where and how a run goes, not what it computes: a resume may move to another cluster, worker count,
# output folder or progress display (every draw derives from seed, round and device, not from workers).
NOT_FINGERPRINTED = (("ray",), ("logging", "out_dir"), ("logging", "progress"))


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's) content to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: Path, write: Callable[[Path], Any]) -> None:
    """Replace `path` whole or not at all, for good: `write` fills a temporary file beside it, which is synced,
    renamed over `path`, and the folder synced, so neither a kill nor a power loss leaves half a file, nor a
    rename the disk never recorded."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        rename_durably(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def rename_durably(written: Path, final: Path) -> None:
    """Sync a file written in full, rename it over `final` and sync the folder: the disk records both."""
    _fsync(written)
    os.replace(written, final)
    _fsync(final.parent)


@dataclass
class RunState:
    """A run between two rounds."""

    next_round: int
    weights: np.ndarray
    clock: float
    total_flops: float
    strategy: dict[str, np.ndarray] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    # Async aggregation only: the model versions devices in flight train on, and the event loop's state.
    versions: dict[int, np.ndarray] = field(default_factory=dict)
    schedule: Optional[dict[str, Any]] = None
    workers_lost: int = 0  # device workers lost so far (the driver's count; the server knows no workers)
    rule: dict[str, np.ndarray] = field(default_factory=dict)  # the server update rule's state (its moments)
    devices: dict[str, Any] = field(default_factory=dict)  # the device-state store (DeviceStates.state: arrays, files)


def fingerprint(config_text: str, inputs: Optional[Mapping[str, bytes]] = None) -> str:
    """What ties a checkpoint to its run: the resolved config, minus NOT_FINGERPRINTED, then one
    `field=digest` word per input file the config names (its content, as the run read it)."""
    config = yaml.safe_load(config_text)
    inputs = inputs or {}
    # an input file counts by its content, not by where it lies: a moved checkout resumes
    for *parents, key in NOT_FINGERPRINTED + tuple(tuple(name.split(".")) for name in inputs):
        section = config
        for p in parents:
            section = section.get(p) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section.pop(key, None)
    words = [hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]]
    words += [f"{field}={hashlib.sha256(inputs[field]).hexdigest()[:16]}" for field in sorted(inputs)]
    return " ".join(words)


def run_fingerprint(cfg) -> str:
    """The fingerprint of a validated config, with the content of its input files and plugins as it read them."""
    from edgeweave.platform.config.schema import dump_config
    from edgeweave.platform.core.inputs import input_files

    plugins = {f"plugins[{spec}]": source for spec, source in cfg.plugin_sources().items()}
    return fingerprint(dump_config(cfg), {**input_files(cfg), **plugins})


def _refusal(path: Path, written: Any, wanted: str) -> str:
    """One line saying why a checkpoint belongs to another run: its config, or which input file changed."""
    where = f"checkpoint = {str(path)!r}"
    theirs = str(written).split()
    ours = wanted.split()
    if theirs[:1] != ours[:1]:
        return f"{where}: written by a run with another config; resume only with the config it was written for"
    before = dict(w.split("=", 1) for w in theirs[1:] if "=" in w)
    now = dict(w.split("=", 1) for w in ours[1:])
    for name in sorted(set(before) | set(now)):
        if name not in before:
            return f"{where}: written without a record of {name}'s content (an older edgeweave); start a new run"
        if before[name] != now.get(name):
            return (
                f"{where}: {name} has changed since the checkpoint was written; restore the file it was "
                "written with to resume, or start a new run"
            )
    return f"{where}: written by a run with another config; resume only with the config it was written for"


def save_checkpoint(path: Path, state: RunState, config_fingerprint: str) -> Path:
    """Write the checkpoint directory `path`, replacing its one file in a single rename. A device-state store
    goes beside it, one .npy per array streamed to a folder named for the round, which the file names: the
    rename switches both at once, and the folders of earlier saves go after it."""
    path.mkdir(parents=True, exist_ok=True)
    arrays = {"weights": np.ascontiguousarray(state.weights, np.float32)}
    arrays.update({f"strategy/{k}": np.ascontiguousarray(v) for k, v in state.strategy.items()})
    arrays.update({f"version/{v}": np.ascontiguousarray(w, np.float32) for v, w in state.versions.items()})
    arrays.update({f"rule/{k}": np.ascontiguousarray(v) for k, v in state.rule.items()})
    meta = {
        "format": FORMAT,
        "config": config_fingerprint,
        "next_round": state.next_round,
        "clock": state.clock,
        "total_flops": state.total_flops,
        "history": state.history,
        "workers_lost": state.workers_lost,
    }
    if state.schedule is not None:
        meta["schedule"] = state.schedule
    if state.devices:
        meta["devices"] = _save_devices(path, state.next_round, state.devices)
    replace_durably(path / STATE, lambda tmp: save_file(arrays, str(tmp), metadata={META: json.dumps(meta)}))
    for old in path.glob(f"{DEVICES}-*"):
        if old.name != meta.get("devices"):
            shutil.rmtree(old, ignore_errors=True)
    return path


DEVICES = "device-state"  # the folder prefix of a checkpoint's device-state store


def _save_devices(path: Path, next_round: int, arrays: dict[str, Any]) -> str:
    """Stream each array of the store to `<path>/device-state-<round>/<name>.npy`, synced; returns the folder's name."""
    name = f"{DEVICES}-{next_round}"
    tmp = path / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for key, values in arrays.items():
        with open(tmp / f"{key}.npy", "wb") as f:
            np.lib.format.write_array(f, as_array(values))
        _fsync(tmp / f"{key}.npy")
    shutil.rmtree(path / name, ignore_errors=True)
    rename_durably(tmp, path / name)
    return name


def _readable(f: Path) -> OnDisk:
    """A store's array file, its header read here: a damaged one is refused now, not half way through a resume."""
    np.load(f, mmap_mode="r")
    return OnDisk(str(f))


def load_checkpoint(path: Path, config_fingerprint: str) -> RunState:
    """Read a checkpoint; a missing, corrupt or foreign one is a UserError naming it."""
    try:
        with safe_open(str(path / STATE), framework="np") as f:
            meta = json.loads((f.metadata() or {}).get(META, "null"))
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise UserError(f"checkpoint = {str(path)!r}: no {STATE} there") from None
    except Exception as e:  # noqa: BLE001 - any parse failure means the file is damaged
        raise UserError(
            f"checkpoint = {str(path)!r}: unreadable ({type(e).__name__}); expected an edgeweave checkpoint"
        ) from None
    written = meta.get("format") if isinstance(meta, dict) else None
    if isinstance(written, str) and written.startswith(FORMAT.split("/")[0] + "/") and written != FORMAT:
        raise UserError(
            f"checkpoint = {str(path)!r}: written by another edgeweave version (format {written}; "
            f"this one reads {FORMAT}); resume it with the version that wrote it, or start a new run"
        )
    if written != FORMAT or "weights" not in arrays:
        raise UserError(f"checkpoint = {str(path)!r}: not an edgeweave checkpoint (format {FORMAT})")
    if meta.get("config") != config_fingerprint:
        raise UserError(_refusal(path, meta.get("config"), config_fingerprint))
    strategy = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("strategy/")}
    versions = {int(k.split("/", 1)[1]): v for k, v in arrays.items() if k.startswith("version/")}
    rule = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("rule/")}
    devices = {}
    if meta.get("devices"):
        folder = path / meta["devices"]
        try:  # passed on by path: a store on disk never crosses memory whole
            devices = {f.stem: _readable(f) for f in folder.glob("*.npy")}
        except (OSError, ValueError):
            devices = {}
        if "seen" not in devices:
            raise UserError(
                f"checkpoint = {str(path)!r}: its device state ({folder.name}) is missing or damaged; start a new run"
            )
    return RunState(
        int(meta["next_round"]),
        arrays["weights"],
        float(meta["clock"]),
        float(meta["total_flops"]),
        strategy,
        list(meta["history"]),
        versions,
        meta.get("schedule"),
        int(meta["workers_lost"]),
        rule,
        devices,
    )
