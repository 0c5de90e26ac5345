"""Every config in configs/ and examples/ validates as shipped, so a new user's first run of it gets past the checks."""

from pathlib import Path

import pytest

from edgeweave.platform.config.schema import load_config
from edgeweave.platform.config.sweep import grid_size, load_sweep

SWEEPS = sorted(Path("configs/sweeps").glob("*.yaml")) + sorted(Path("examples").rglob("sweep.yaml"))
CONFIGS = sorted(p for p in [*Path("configs").rglob("*.yaml"), *Path("examples").rglob("*.yaml")] if p not in SWEEPS)


def test_there_are_configs():
    assert len(CONFIGS) >= 12 and len(SWEEPS) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=str)
def test_config_validates(path):
    cfg = load_config(path)
    assert cfg.name and cfg.training.rounds >= 1


@pytest.mark.parametrize("path", SWEEPS, ids=str)
def test_sweep_validates_every_value_of_its_space(path):
    sweep, _ = load_sweep(path)  # builds a full config for every grid and choice value
    assert grid_size(sweep) >= 4
