"""Start a one-machine Ray on the loopback address, or join one: the only module that starts Ray.

It imports Ray and nothing of the platform's, so a command can start Ray while it loads its data.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional

import ray
from ray._private import ray_constants

from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.errors import RunFailed

LOOPBACK = "127.0.0.1"  # the one address a Ray started here uses: none of its processes reaches another host


def ray_address(cfg: ExperimentConfig) -> Optional[str]:
    """The Ray a run joins: the config's `ray.address`, else RAY_ADDRESS (as inside `ray job submit`), else none."""
    return cfg.ray.address or os.environ.get("RAY_ADDRESS") or None


def connect(cfg: ExperimentConfig) -> bool:
    """Join the configured cluster (`ray_address`), else start one.

    Returns True when this call started Ray, so the caller knows to shut it down.
    """
    if ray.is_initialized():
        return False
    address = ray_address(cfg)
    if address:
        if address.split(":")[0] in (LOOPBACK, "localhost"):  # a Ray started on the loopback, by start_local
            _on_loopback(address=address, logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
        return False
    start_local()
    return True


def start_local(**options: Any) -> None:
    """Start a one-machine Ray whose processes all listen and talk on the loopback address only."""
    _on_loopback(address="local", include_dashboard=False, dashboard_host=LOOPBACK, logging_level=logging.WARNING,
                 **options)


def _on_loopback(**options: Any) -> None:
    """`ray.init` with this process's node address 127.0.0.1: to start a Ray there, or to join one that is.

    Ray on Linux swaps a node address of 127.0.0.1 for the host's routable one (found by routing towards
    a public DNS server) unless its multi-host switch is off, as on macOS and Windows; a driver joining a
    loopback Ray from the routable address would wait forever for a node there. The switch is a
    constant read at import, so it is off only while Ray starts here (the processes Ray starts are given
    the address); a node that took another address all the same is stopped with one line.
    """
    multi_host = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(_node_ip_address=LOOPBACK, **options)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = multi_host
    node = ray.util.get_node_ip_address()
    if node != LOOPBACK:
        ray.shutdown()
        raise RunFailed(f"the local Ray took the node address {node}, not {LOOPBACK}: Ray {ray.__version__} "
                        f"picks it otherwise than edgeweave expects")
