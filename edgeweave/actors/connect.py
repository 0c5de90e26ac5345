"""Start a one-machine Ray on the loopback address, or join one: the only module that starts Ray.

It imports Ray and nothing of the platform's, so a command can start Ray while it loads its data.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any, Optional

import ray
from ray._private import parameter, ray_constants

from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.core.errors import RunFailed

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
        host, _, port = address.rpartition(":")
        if host in (LOOPBACK, "localhost") and local_node_address(port) in (None, LOOPBACK):
            _on_loopback(address=address, logging_level=logging.WARNING)  # a node on the loopback (start_local's)
        else:  # another host's Ray, or `ray start --head --node-ip-address=127.0.0.1`, whose node Ray put on this
            ray.init(address=address, logging_level=logging.WARNING)  # host's own routable address on Linux
        return False
    start_local()
    return True


def local_node_address(port: str) -> Optional[str]:
    """The node address of this machine's raylet whose cluster's GCS listens on `port`, from the raylet's command
    line (Linux); None when there is none or it cannot be read.

    A driver that joins from the wrong one of the loopback and the host's routable address waits a minute
    for a node there before Ray gives up; this look takes milliseconds.
    """
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        flags = dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)
        if flags.get("--gcs-address", "").rpartition(":")[2] == port and "--node_ip_address" in flags:
            return flags["--node_ip_address"]
    return None


def start_local() -> None:
    """Start a one-machine Ray whose processes all listen and talk on the loopback address only.

    Its dashboard agent listens on a free port: Ray's fixed default (52365) is taken while another Ray runs on
    the machine or one that has just ended still exits, and the agent then retried it for seconds while the
    node waited.
    `ray.init` has no argument for that port, so the node's parameters are given it while Ray starts here.
    """
    ray_params = parameter.RayParams
    port = free_port()

    class OwnAgentPort(ray_params):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("dashboard_agent_listen_port", port)
            super().__init__(*args, **kwargs)

    parameter.RayParams = OwnAgentPort  # type: ignore[misc]  # Ray's class, swapped while Ray starts
    try:
        _on_loopback(address="local", include_dashboard=False, dashboard_host=LOOPBACK, logging_level=logging.WARNING)
    finally:
        parameter.RayParams = ray_params  # type: ignore[misc]  # Ray's own class back


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
        raise RunFailed(
            f"the local Ray took the node address {node}, not {LOOPBACK}: Ray {ray.__version__} "
            f"picks it otherwise than edgeweave expects"
        )
