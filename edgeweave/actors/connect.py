"""Start a one-machine Ray on the loopback address, or join one: the only module that starts Ray.

It imports Ray and nothing of the platform's, so a command can start Ray while it loads its data.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Optional

import ray
from ray._private import parameter, ray_constants

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


PRELOAD = ["torch", "edgeweave.actors.worker"]  # what every worker process of a run's own Ray imports at its start


def start_local() -> None:
    """Start a one-machine Ray whose processes all listen and talk on the loopback address only.

    Ray starts a worker process per CPU as it starts; here each imports torch and the device worker's
    modules (`PRELOAD`) at once, while the command loads its data, so the device workers that take
    these processes are ready about a second and a half sooner. Its dashboard agent listens on a free
    port: Ray's fixed default (52365) is taken while another Ray runs on the machine or one that has
    just ended still exits, and the agent then retried it for seconds while the node waited.
    `ray.init` has no argument for that port, so the node's parameters are given it while Ray starts here.
    """
    ray_params = parameter.RayParams
    port = free_port()

    class OwnAgentPort(ray_params):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("dashboard_agent_listen_port", port)
            super().__init__(*args, **kwargs)

    parameter.RayParams = OwnAgentPort
    try:
        _on_loopback(address="local", include_dashboard=False, dashboard_host=LOOPBACK,
                     logging_level=logging.WARNING, _system_config={"preload_python_modules": PRELOAD})
    finally:
        parameter.RayParams = ray_params


def free_port() -> int:
    """A port on the loopback address that nothing listens on now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


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
