"""The local Ray a run starts keeps to the loopback address; checked on `ray.init`'s arguments, no Ray started."""

from __future__ import annotations

from typing import Any

import pytest
import ray
from ray._private import ray_constants, services

from edgeweave.actors import connect as session
from edgeweave.platform.core.errors import RunFailed

LOOPBACK = "127.0.0.1"


class FakeInit:
    """Stands in for `ray.init`: records its arguments and the node address Ray would take from them.

    Ray itself resolves `_node_ip_address` with `services.resolve_ip_for_localhost`, which on Linux turns
    127.0.0.1 into the host's routable address unless Ray's multi-host switch is off when it runs.
    """

    def __init__(self) -> None:
        self.kwargs: dict[str, Any] = {}
        self.node = ""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.kwargs = {"address": args[0] if args else kwargs.get("address"), **kwargs}
        self.node = (
            services.resolve_ip_for_localhost(kwargs["_node_ip_address"])
            if "_node_ip_address" in kwargs
            else services.get_node_ip_address()
        )


@pytest.fixture
def fake_ray(monkeypatch, make_config):
    fake = FakeInit()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake)
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: fake.node)
    return fake, make_config()


def test_a_local_ray_is_pinned_to_the_loopback_address(fake_ray):
    fake, cfg = fake_ray
    switch = ray_constants.ENABLE_RAY_CLUSTER
    assert session.connect(cfg) is True
    assert fake.kwargs["address"] == "local"
    assert fake.kwargs["_node_ip_address"] == LOOPBACK and fake.kwargs["dashboard_host"] == LOOPBACK
    assert fake.node == LOOPBACK  # what Ray takes, not only what it is given
    assert ray_constants.ENABLE_RAY_CLUSTER == switch  # a later join of a real cluster finds its node


def test_a_local_ray_on_another_address_is_stopped_with_one_line(fake_ray, monkeypatch):
    fake, cfg = fake_ray
    stopped = []
    monkeypatch.setattr(ray, "shutdown", lambda: stopped.append(True))
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: "192.0.2.7")
    with pytest.raises(RunFailed, match="192.0.2.7, not 127.0.0.1"):
        session.connect(cfg)
    assert stopped == [True]


def test_joining_a_configured_cluster_is_left_to_it(fake_ray, monkeypatch):
    fake, cfg = fake_ray
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    assert session.connect(cfg) is False
    assert fake.kwargs["address"] == "10.0.0.5:6379" and "_node_ip_address" not in fake.kwargs


def test_joining_a_loopback_ray_joins_from_the_loopback(fake_ray, monkeypatch):
    """Another process's loopback Ray (RAY_ADDRESS=127.0.0.1:port) has its only node at 127.0.0.1: a driver
    that took the routable address would wait for a node there forever."""
    fake, cfg = fake_ray
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:41719")
    assert session.connect(cfg) is False
    assert fake.kwargs["address"] == "127.0.0.1:41719" and fake.node == LOOPBACK


def test_the_node_address_of_a_local_ray_is_read_from_its_raylet_s_command_line():
    """What `connect` looks at before it joins a Ray on this machine: which address its node took."""
    import subprocess
    import sys
    import time

    fake_raylet = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(30)",
            "--gcs-address=192.0.2.9:47113",
            "--node_ip_address=192.0.2.9",
        ]
    )
    try:
        deadline = time.time() + 10  # until the process's command line is there to read
        while session.local_node_address("47113") is None and time.time() < deadline:
            time.sleep(0.05)
        assert session.local_node_address("47113") == "192.0.2.9"
        assert session.local_node_address("47114") is None
    finally:
        fake_raylet.kill()
        fake_raylet.wait()
