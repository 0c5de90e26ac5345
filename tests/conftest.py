"""Shared fixtures."""

from __future__ import annotations

from typing import Any

import pytest

from edgeweave.platform.config.schema import ExperimentConfig, build_config
from tests.helpers import tiny_raw


@pytest.fixture
def make_config(tmp_path):
    """Build a tiny digits config under tmp_path; keyword sections override its keys."""

    def make(**sections: Any) -> ExperimentConfig:
        return build_config(tiny_raw(tmp_path, **sections))

    return make
