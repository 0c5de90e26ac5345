"""Every shipped config and sweep runs end to end through the real CLI, shortened, on one local Ray.

Data sets that cannot be downloaded here are generated in their real on-disk layouts (tiny CIFAR
batches, a folder of WAV clips), so the shipped loaders read them as they would the real ones.
The quickstart and central configs run in full and must reach the README's accuracy targets.
"""

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgeweave.cli import main
from edgeweave.platform.config.schema import load_config
from edgeweave.platform.config.sweep import load_sweep
from edgeweave.platform.data.speech_synth import WORDS, generate
from tests.unit.test_femnist import write_leaf

pytestmark = pytest.mark.integration

SWEEPS = sorted(Path("configs/sweeps").glob("*.yaml")) + sorted(Path("examples").rglob("sweep.yaml"))
CONFIGS = sorted(p for p in [*Path("configs").rglob("*.yaml"), *Path("examples").rglob("*.yaml")] if p not in SWEEPS)
SHORT = [
    "training.rounds=2",
    "training.local_steps=2",
    "ray.num_workers=1",
    "logging.progress=false",
    "logging.wandb.mode=disabled",
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    """CIFAR-10 in torchvision's layout, Speech Commands v2 and FEMNIST (LEAF's JSON) in theirs, all tiny."""
    root = tmp_path_factory.mktemp("data")
    g = np.random.default_rng(0)
    cifar = root / "cifar" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": g.integers(0, 256, size=(60, 3072), dtype=np.uint8),
            "labels": g.integers(0, 10, size=60).tolist(),
        }
        (cifar / name).write_bytes(pickle.dumps(batch))
    speech = root / "speech_commands"
    generate(speech, {"train": 120, "validation": 12, "test": 36}, WORDS[:10])  # the words configs name first
    write_leaf(root / "femnist", writers=16)
    return {"cifar10": root / "cifar", "speech_commands": speech, "femnist": root / "femnist"}


def shortened(path: Path, generated: dict[str, Path]) -> list[str]:
    """Overrides that shorten a shipped config and point it at generated data where it needs a download."""
    cfg = load_config(path)
    extra = []
    if cfg.data.name in generated:  # tiny data: fewer devices, each with a few samples
        extra = [f"data.root={generated[cfg.data.name]}", "devices.count=12"]
        if "min_samples" in type(cfg.partition.params).model_fields:
            extra.append("partition.min_samples=2")
    if cfg.model.name.startswith("vgg"):
        extra.append("model.width=0.25")
    return SHORT + extra


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.is_dir())


@pytest.mark.parametrize("path", CONFIGS, ids=str)
def test_shipped_config_runs(path, generated, local_ray, tmp_path):
    out = tmp_path / "runs"
    overrides = shortened(path, generated) + [f"logging.out_dir={out}"]
    code = main(["run", str(path), *[a for o in overrides for a in ("--set", o)]])
    assert code == 0
    (run_dir,) = run_dirs(out)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [0, 1] and metrics[-1]["test_accuracy"] is not None
    for name in (
        "config.yaml",
        "devices.jsonl",
        "model.safetensors",
        "accuracy.png",
        "devices.png",
        "checkpoint/state.safetensors",
    ):
        assert (run_dir / name).is_file(), name


def short_sweep(path: Path, tmp_path: Path) -> Path:
    """The shipped sweep with 2-round trials: its first dimension cut to its first and last values, the others
    to their first (two trials; every value of the whole space is still checked by `load_sweep`)."""
    sweep, _ = load_sweep(path)  # every value of the full space is checked here
    raw = yaml.safe_load(path.read_text())
    # evaluated every round, so ASHA's first rung, cut to 1 below, can compare trials
    raw["set"] = {**raw.get("set", {}), **dict(o.split("=", 1) for o in [*SHORT, "training.eval_every=1"])}
    raw["set"] = {k: yaml.safe_load(v) if isinstance(v, str) else v for k, v in raw["set"].items()}
    for i, dim in enumerate(raw["space"].values()):
        for kind in ("grid", "choice"):
            if kind in dim and len(dim[kind]) > 1:
                dim[kind] = [dim[kind][0], dim[kind][-1]] if i == 0 else dim[kind][:1]
    if raw.get("scheduler", {}).get("name") == "asha":
        raw["scheduler"]["grace_period"] = 1
    raw["checkpoint_every"] = 1
    raw["out_dir"] = str(tmp_path / "sweeps")
    short = tmp_path / path.name
    short.write_text(yaml.safe_dump(raw))
    return short


@pytest.mark.parametrize("path", SWEEPS, ids=str)
def test_shipped_sweep_runs(path, local_ray, tmp_path):
    assert main(["sweep", str(short_sweep(path, tmp_path))]) == 0
    (sweep_dir,) = run_dirs(tmp_path / "sweeps")
    assert (sweep_dir / "results.csv").is_file() and (sweep_dir / "best.yaml").is_file()
    assert load_config(sweep_dir / "best.yaml").training.rounds == 2


@pytest.mark.parametrize("path, target", [("configs/quickstart.yaml", 0.85), ("configs/central.yaml", 0.95)])
def test_readme_accuracy_targets(path, target, local_ray, tmp_path):
    out = tmp_path / "runs"
    assert (
        main(
            [
                "run",
                path,
                "--set",
                f"logging.out_dir={out}",
                "--set",
                "logging.progress=false",
                "--set",
                "logging.wandb.mode=disabled",
            ]
        )
        == 0
    )
    (run_dir,) = run_dirs(out)
    last = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["test_accuracy"] >= target
