"""Every config in configs/ validates as shipped, so a new user's first run of it gets past the checks."""

from pathlib import Path

import pytest

from edgeweave.platform.config import load_config

CONFIGS = sorted(Path("configs").rglob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 12


@pytest.mark.parametrize("path", CONFIGS, ids=str)
def test_config_validates(path):
    cfg = load_config(path)
    assert cfg.name and cfg.training.rounds >= 1
