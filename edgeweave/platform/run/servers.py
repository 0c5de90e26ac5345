"""The driver's server for a config: synchronous rounds (server.py) or buffered async steps (asynchronous.py)."""

from __future__ import annotations

from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.data import ArrayData
from edgeweave.platform.partition import Partition
from edgeweave.platform.run.asynchronous import AsyncServer
from edgeweave.platform.run.server import Server


def build_server(cfg: ExperimentConfig, data: ArrayData, partition: Partition) -> Server:
    """The server for the config's aggregation mode."""
    if cfg.aggregation.mode == "async":
        return AsyncServer(cfg, data, partition)
    return Server(cfg, data, partition)
