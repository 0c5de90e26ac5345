"""The benchmark's workload and its floor: the same training done by plain PyTorch processes.

`edgeweave bench` times the platform's `fedavg` run (Ray start-up included) against this
floor: as many spawned processes as the platform has workers, one thread each, each round's
devices split between them, every device trained on the same mini-batches in the same order
(the same seeds), the partial sums averaged in place in shared memory, and the same
evaluations. No Ray, no serialisation beyond a queue message per process and round, so the
ratio of the two is what the platform costs on top of the training itself.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from edgeweave.platform.config import ExperimentConfig, build_config
from edgeweave.platform.data import ArrayData
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import Partition
from edgeweave.platform.seeding import torch_generator
from edgeweave.platform.server import Server
from edgeweave.platform.sgd import sgd_settings
from edgeweave.platform.training import batch_order

SAMPLES_PER_DEVICE = 50
POOL = 10_000  # distinct CIFAR-shaped samples every population draws its devices' data from


def workload(population: int = 1000, rounds: int = 50, eval_every: int = 10, seed: int = 0) -> ExperimentConfig:
    """The default benchmark: devices of 50 CIFAR-shaped samples, 10 per round, one epoch at
    batch 10, SGD lr 0.1, the two-conv CNN (32 and 64 filters, max-pool, 128 hidden units)."""
    return build_config({
        "name": f"bench-{population}",
        "seed": seed,
        "data": {"name": "synthetic", "train_samples": min(POOL, population * SAMPLES_PER_DEVICE),
                 "test_samples": 1000, "image_size": 32, "channels": 3},
        "partition": {"policy": "pool", "samples_per_device": SAMPLES_PER_DEVICE},
        "model": {"name": "cnn"},
        "devices": {"count": population, "per_round": 10},
        "training": {"rounds": rounds, "local_epochs": 1, "batch_size": 10, "lr": 0.1, "momentum": 0.0,
                     "eval_every": eval_every},
        "logging": {"progress": False, "wandb": {"mode": "disabled"}, "checkpoint_every": 0},
    })


def device_sequence(cfg: ExperimentConfig, data: ArrayData, partition: Partition) -> list[list[int]]:
    """The devices the platform trains in each round (its own sampler, so the floor trains the same)."""
    server = Server(cfg, data, partition)
    return [[j.device for j in server.plan(r)[0]] for r in range(cfg.training.rounds)]


def load_vector(vector: torch.Tensor, params: Sequence[torch.Tensor]) -> None:
    """Copy a flat vector into the parameters (torch's vector_to_parameters would alias it instead)."""
    offset = 0
    with torch.no_grad():
        for p in params:
            p.copy_(vector[offset:offset + p.numel()].view_as(p))
            offset += p.numel()


def _floor_worker(rank: int, cfg: ExperimentConfig, x: torch.Tensor, y: torch.Tensor, indices: np.ndarray,
                  offsets: np.ndarray, shape: tuple, classes: int, weights: torch.Tensor, sums: torch.Tensor,
                  tasks: Any, done: Any) -> None:
    torch.set_num_threads(1)
    model = build_model(cfg.model, shape, classes, cfg.seed)
    params = list(model.parameters())
    settings = sgd_settings(cfg)
    done.put(("ready", rank, os.getpid()))
    while (task := tasks.get()) is not None:
        round_, devices = task
        sums.zero_()
        total = 0
        for d in devices:
            load_vector(weights, params)
            ids = torch.from_numpy(indices[offsets[d]:offsets[d + 1]])
            xd, yd = x[ids], y[ids]
            opt = torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum)
            model.train()
            for idx in batch_order(len(ids), settings, torch_generator(cfg.seed, round_, d)):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(xd[idx]), yd[idx]).backward()
                opt.step()
            sums.add_(torch.nn.utils.parameters_to_vector(params).detach(), alpha=float(len(ids)))
            total += len(ids)
        done.put(("round", rank, total))


def _evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float(sum(int((model(x[i:i + 1024]).argmax(1) == y[i:i + 1024]).sum())
                         for i in range(0, len(y), 1024)) / len(y))


def run_floor(cfg: ExperimentConfig, data: ArrayData, partition: Partition, sequence: Sequence[Sequence[int]],
              workers: int) -> dict[str, Any]:
    """Time the plain-PyTorch floor; returns wall and start-up seconds, per-round times, accuracies, RSS."""
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    torch.set_num_threads(1)
    x, y = torch.from_numpy(data.x_train).share_memory_(), torch.from_numpy(data.y_train).share_memory_()
    model = build_model(cfg.model, data.input_shape, data.num_classes, cfg.seed)
    params = list(model.parameters())
    weights = torch.nn.utils.parameters_to_vector(params).detach().clone().share_memory_()
    sums = [torch.zeros_like(weights).share_memory_() for _ in range(workers)]
    tasks = [ctx.Queue() for _ in range(workers)]
    done = ctx.Queue()
    procs = [ctx.Process(target=_floor_worker, args=(r, cfg, x, y, partition.indices, partition.offsets,
                                                     data.input_shape, data.num_classes, weights, sums[r],
                                                     tasks[r], done), daemon=True) for r in range(workers)]
    for p in procs:
        p.start()
    pids = [done.get()[2] for _ in procs]
    startup = time.perf_counter() - t0
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    rounds, accuracies, rss = [], [], []
    try:
        for r, devices in enumerate(sequence):
            t = time.perf_counter()
            shares = [list(devices[k::workers]) for k in range(workers)]  # equal shards: round-robin
            busy = [k for k in range(workers) if shares[k]]
            for k in busy:
                tasks[k].put((r, shares[k]))
            total = sum(done.get()[2] for _ in busy)
            weights.copy_(torch.stack([sums[k] for k in busy]).sum(0) / total)
            if (r + 1) % cfg.training.eval_every == 0 or r + 1 == len(sequence):
                load_vector(weights, params)
                accuracies.append(_evaluate(model, x_test, y_test))
            rounds.append(time.perf_counter() - t)
            rss.append(rss_bytes([os.getpid(), *pids]))
    finally:
        for q in tasks:
            q.put(None)
        for p in procs:
            p.join(timeout=30)
    return {"wall": time.perf_counter() - t0, "startup": startup, "rounds": rounds, "accuracy": accuracies[-1],
            "weights": weights.numpy().copy(),
            "rss": rss, "peak_rss": max(rss)}  # sampled once per round


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes(pids: Sequence[int]) -> int:
    """Resident memory of the processes together (Linux /proc; 0 where it cannot be read)."""
    return 1024 * sum(_status_kib(p, "VmRSS") for p in pids)


def summary(kind: str, workers: int, population: int, cfg: ExperimentConfig, result: dict[str, Any]) -> dict[str, Any]:
    """One table row: wall and start-up, throughput, per-round p50 / p95, memory."""
    rounds = result["rounds"]
    updates = cfg.devices.per_round * len(rounds)
    train_seconds = result["wall"] - result["startup"]
    q = statistics.quantiles(rounds, n=20) if len(rounds) >= 2 else [rounds[0]] * 19
    early, late = result["rss"][: max(1, len(rounds) // 10)], result["rss"][-max(1, len(rounds) // 10):]
    return {
        "kind": kind, "workers": workers, "population": population, "rounds": len(rounds),
        "wall_s": result["wall"], "startup_s": result["startup"],
        "device_updates_per_s": updates / train_seconds,
        "samples_per_s": updates * SAMPLES_PER_DEVICE * cfg.training.local_epochs / train_seconds,
        "round_p50_s": statistics.median(rounds), "round_p95_s": q[18],
        "peak_rss_mb": result["peak_rss"] / 2**20,
        "rss_growth_mb": (statistics.mean(late) - statistics.mean(early)) / 2**20,
        "accuracy": result["accuracy"],
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The benchmark's Markdown table; `overhead` is the platform's wall over the floor's, same workers."""
    floor = {(r["workers"], r["population"]): r["wall_s"] for r in rows if r["kind"] == "floor"}
    lines = ["| run | workers | devices | rounds | wall (s) | start-up (s) | overhead | device-updates/s | "
             "samples/s | round p50 (s) | round p95 (s) | peak RSS (MB) | RSS growth (MB) | accuracy |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        base = floor.get((r["workers"], r["population"]))
        ratio = f"{r['wall_s'] / base:.2f}x" if base and r["kind"] == "platform" else "-"
        lines.append(f"| {r['kind']} | {r['workers']} | {r['population']:,} | {r['rounds']} | {r['wall_s']:.1f} | "
                     f"{r['startup_s']:.1f} | {ratio} | {r['device_updates_per_s']:.1f} | {r['samples_per_s']:.0f} | "
                     f"{r['round_p50_s']:.3f} | {r['round_p95_s']:.3f} | {r['peak_rss_mb']:.0f} | "
                     f"{r['rss_growth_mb']:+.1f} | {r['accuracy']:.4f} |")
    return "\n".join(lines)
