"""A run's own local Ray keeps to 127.0.0.1: the driver, the node and its workers, so nothing reaches another host."""

import pytest
import ray

from edgeweave.actors.connect import LOOPBACK, connect, start_local

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


def test_a_local_ray_does_not_wait_for_a_port_another_ray_holds(monkeypatch):
    """Ray's dashboard agent listens on a fixed port (52365) by default: with another Ray on the machine, or
    one that has just ended and whose agent still holds it, the new agent retried the port for seconds
    while the node waited on it. A run's own Ray gives its agent a free port."""
    import socket
    from pathlib import Path

    from ray._private import ray_constants

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    held = socket.socket()
    held.bind((LOOPBACK, ray_constants.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT))  # as another Ray's agent does
    held.listen()
    try:
        start_local()
        try:
            node = ray._private.worker._global_node
            assert node.dashboard_agent_listen_port != ray_constants.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT
            assert ray.get(node_address.remote(), timeout=120) == LOOPBACK  # the node works
            log = Path(node.get_logs_dir_path()) / "dashboard_agent.log"
            assert "Failed to bind" not in (log.read_text() if log.is_file() else "")
        finally:
            ray.shutdown()
    finally:
        held.close()


def test_back_to_back_runs_wait_on_nothing(tmp_path, monkeypatch):
    """Two runs, the second started the moment the first (and its Ray) ended, a third beside another Ray
    session: nothing is in no phase, and no phase of these 2-round runs takes anything like the tens of
    seconds a wait on the machine's other Ray cost (the bound is loose: the suite shares two cores)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    command = [
        str(Path(sys.executable).parent / "edgeweave"),
        "run",
        "configs/quickstart.yaml",
        "--set",
        "training.rounds=2",
        "--set",
        f"logging.out_dir={tmp_path}",
        "--set",
        "logging.progress=false",
        "--set",
        "logging.wandb.mode=disabled",
    ]
    for _ in range(2):
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    start_local()  # another Ray session on the machine while the third run starts its own
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        ray.shutdown()
    runs = sorted(tmp_path.iterdir())
    assert len(runs) == 3
    for run_dir in runs:
        timeline = json.loads((run_dir / "timeline.json").read_text())
        assert timeline["idle"] == [], timeline
        assert max(s["seconds"] for s in timeline["phases"]) < 30, timeline
        assert {"ray start", "data load", "workers ready", "first round", "shutdown"} <= {
            s["phase"] for s in timeline["phases"]
        }
