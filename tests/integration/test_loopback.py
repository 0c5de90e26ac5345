"""A run's own local Ray keeps to 127.0.0.1: the driver, the node and its workers, so nothing reaches another host."""

import pytest
import ray

from edgeweave.actors.connect import LOOPBACK, connect

pytestmark = pytest.mark.integration


@ray.remote(num_cpus=0)
def node_address() -> str:
    return ray.util.get_node_ip_address()


def test_a_run_s_local_ray_uses_the_loopback_address_only(make_config, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    assert connect(make_config())
    try:
        assert ray.util.get_node_ip_address() == LOOPBACK
        assert [n["NodeManagerAddress"] for n in ray.nodes()] == [LOOPBACK]
        assert ray.get(node_address.remote(), timeout=120) == LOOPBACK
    finally:
        ray.shutdown()
