"""`ray job submit` against a real Ray head bound to 127.0.0.1, with token authentication on."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from ray.job_submission import JobStatus, JobSubmissionClient

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_head(temp_dir: str) -> None:
    """Kill this head's processes only (every one names its temp dir), not other Ray sessions."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and temp_dir.encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


@pytest.fixture(scope="module")
def ray_head():
    temp_dir = tempfile.mkdtemp(prefix="ew-ray-")  # short: Ray's socket paths live under it
    dashboard = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    bin_dir = Path(sys.executable).parent
    port = free_port()
    cmd = [
        str(bin_dir / "ray"),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        "--include-dashboard=true",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--temp-dir={temp_dir}",
        "--num-cpus=2",
        "--disable-usage-stats",
    ]
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=180)
        yield f"http://127.0.0.1:{dashboard}", env, f"127.0.0.1:{port}"
    finally:
        stop_head(temp_dir)


def test_quickstart_submitted_as_a_job_writes_its_run(ray_head, tmp_path):
    address, env, _ = ray_head
    client = None
    deadline = time.time() + 120
    while client is None:
        try:  # the token goes in the Authorization header, as `ray job submit` sends it
            client = JobSubmissionClient(address, headers={"Authorization": f"Bearer {env['RAY_AUTH_TOKEN']}"})
        except OSError:  # the dashboard takes a moment to come up
            if time.time() > deadline:
                raise
            time.sleep(2)
    out = tmp_path / "shared"
    entrypoint = (
        f"edgeweave run configs/quickstart.yaml --set training.rounds=3 --set logging.out_dir={out} "
        "--set logging.progress=false"
    )
    while True:  # the job agent can lag the dashboard by a few seconds
        try:
            job = client.submit_job(entrypoint=entrypoint, runtime_env={"working_dir": "."})
            break
        except RuntimeError as e:
            if "No available agent" not in str(e) or time.time() > deadline:
                raise
            time.sleep(2)
    status, logs = wait(client, job)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    assert "resuming" not in logs and "quickstart: fedavg finished 3 rounds" in logs

    (run_dir,) = out.iterdir()
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["round"] for m in metrics] == [0, 1, 2] and metrics[-1]["test_accuracy"] > 0.1
    assert (run_dir / "model.safetensors").stat().st_size > 0
    # The job joined the head's cluster (RAY_ADDRESS inside a job) rather than starting its own.
    assert client.get_job_info(job).driver_node_id and "Started a local Ray instance" not in logs

    # A config with a plugin: the plugin file travels with the job, and its parts reach every worker.
    example = client.submit_job(
        entrypoint=f"edgeweave run examples/custom_model/config.yaml --set training.rounds=2 "
        f"--set logging.out_dir={tmp_path / 'example'} --set logging.progress=false",
        runtime_env={"working_dir": "."},
    )
    status, logs = wait(client, example)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    assert "custom-model: fedavg finished 2 rounds" in logs
    (run_dir,) = (tmp_path / "example").iterdir()
    assert "examples/custom_model/plugin.py" in (run_dir / "config.yaml").read_text()

    # Ignored outputs, data and environments stay out of the uploaded working directory.
    Path("runs").mkdir(exist_ok=True)
    listing = client.submit_job(entrypoint="ls -a", runtime_env={"working_dir": "."})
    status, logs = wait(client, listing)
    names = set(logs.split())
    assert status == JobStatus.SUCCEEDED and {"edgeweave", "configs", "pyproject.toml"} <= names
    assert not names & {"runs", "data", ".venv", ".git"}


def wait(client: JobSubmissionClient, job: str) -> tuple:
    deadline = time.time() + 300
    status = client.get_job_status(job)
    while status not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        assert time.time() < deadline, "the job did not finish"
        time.sleep(1)
        status = client.get_job_status(job)
    return status, client.get_job_logs(job)


def test_runs_attach_to_a_running_head_and_leave_it_running(ray_head, tmp_path):
    """Many short runs on one head started once: each attaches (RAY_ADDRESS), trains, and leaves the head up."""
    _, env, gcs = ray_head
    out = tmp_path / "runs"
    for _ in range(2):
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "edgeweave"),
                "run",
                "configs/quickstart.yaml",
                "--set",
                "training.rounds=2",
                "--set",
                f"logging.out_dir={out}",
                "--set",
                "logging.progress=false",
                "--set",
                "logging.wandb.mode=disabled",
            ],
            env={**env, "RAY_ADDRESS": gcs},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "quickstart: fedavg finished 2 rounds" in done.stdout
    runs = sorted(out.iterdir())
    assert len(runs) == 2
    for run_dir in runs:
        phases = {p["phase"]: p for p in json.loads((run_dir / "timeline.json").read_text())["phases"]}
        assert "ray attach" in phases and "ray start" not in phases
        # `ray start --node-ip-address=127.0.0.1` put its node on the host's routable address: a driver joining
        # from the loopback waited a minute for a node there before it gave up
        assert phases["ray attach"]["seconds"] < 30
    status = subprocess.run(
        [str(Path(sys.executable).parent / "ray"), "status", f"--address={gcs}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0 and "CPU" in status.stdout  # the head outlived both runs
