"""Tiny experiment configs built in code: nothing is downloaded."""

from __future__ import annotations

from typing import Any


def tiny_raw(tmp_path, **sections: Any) -> dict:
    """A raw config for a small digits run writing under tmp_path; sections override keys."""
    raw: dict[str, Any] = {
        "name": "tiny",
        "seed": 3,
        "data": {"name": "digits"},
        "partition": {"policy": "iid"},
        "model": {"name": "cnn", "width": 0.25},
        "devices": {"count": 6, "per_round": 4},
        "training": {"rounds": 2, "batch_size": 16, "lr": 0.05},
        "strategy": {"name": "fedavg"},
        "logging": {"out_dir": str(tmp_path / "runs"), "progress": False, "wandb": {"mode": "disabled"}},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return raw


def read_wandb_offline(path) -> dict:
    """History rows and summary of an offline W&B run file (a LevelDB-style log of protobufs)."""
    import json
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    raw = open(path, "rb").read()
    assert raw[:4] == b":W&B", "not a W&B run file"
    pos, block, chunks, history, summary = 7, 32768, b"", [], {}
    while pos + 7 <= len(raw):
        if block - pos % block < 7:  # too little room left for a header: the block is padded
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        chunks += raw[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: one record complete
            rec = pb.Record()
            rec.ParseFromString(chunks)
            chunks = b""
            which = rec.WhichOneof("record_type")
            if which == "history":
                history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
            elif which == "summary":
                summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.summary.update})
    return {"history": history, "summary": summary}


def all_cpus_free(timeout: float = 30.0) -> None:
    """Wait until Ray sees every CPU of the cluster free again (actors of a run that just ended release
    theirs a moment later), so a run started now gets as many workers as the CPUs allow."""
    import time

    import ray

    deadline = time.monotonic() + timeout
    while (
        ray.available_resources().get("CPU", 0) < ray.cluster_resources().get("CPU", 0) and time.monotonic() < deadline
    ):
        time.sleep(0.1)


def run_without_ray(cfg):
    """A run's rounds in this process, no Ray: one Server, one Client training every device in turn; the Server
    after the last round. It trains with the threads a worker has (one per CPU it takes): torch's sums depend
    on them."""
    import torch

    from edgeweave.platform.data import load_dataset
    from edgeweave.platform.partition import partition_data
    from edgeweave.platform.run.client import Client
    from edgeweave.platform.run.servers import build_server

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(cfg.ray.cpus_per_worker)))
    try:
        data = load_dataset(cfg.data, cfg.seed)
        part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed, data.owners)
        server, client = build_server(cfg, data, part), Client(cfg, data, part)
        for r in range(cfg.training.rounds):
            units = server.plan_units(r)
            server.fold(
                [[client.run(u.version, u.weights, u.jobs, server.shared, server.stored(u.jobs))] for u in units]
            )
        return server
    finally:
        torch.set_num_threads(threads)


def wait_for_rounds(root, pattern: str, rounds: int, proc, timeout: float = 300) -> None:
    """Until the first file under `root` matching `pattern` (a metrics.jsonl) holds `rounds` rounds; the
    process `proc` that writes it must still run (it is about to be interrupted)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        logged = list(root.glob(pattern))
        if logged and len(logged[0].read_text().splitlines()) >= rounds:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "it ended before it could be interrupted"
