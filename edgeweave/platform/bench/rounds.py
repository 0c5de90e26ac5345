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
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from edgeweave.platform.bench.whole import proc_kib
from edgeweave.platform.config.schema import ExperimentConfig, build_config
from edgeweave.platform.core.seeding import torch_generator
from edgeweave.platform.data import ArrayData
from edgeweave.platform.models import build_model
from edgeweave.platform.partition import Partition
from edgeweave.platform.run.phases import Phases
from edgeweave.platform.run.server import Server
from edgeweave.platform.train.sgd import sgd_settings
from edgeweave.platform.train.training import batch_order

SAMPLES_PER_DEVICE = 50
SAMPLES = 50_000  # distinct CIFAR-shaped training samples, as many as CIFAR-10 has
TEST_SAMPLES = 2_000


def workload(
    population: int = 1000,
    rounds: int = 30,
    eval_every: int = 10,
    seed: int = 0,
    samples: int = SAMPLES,
    test_samples: int = TEST_SAMPLES,
) -> ExperimentConfig:
    """The default benchmark: devices of 50 CIFAR-shaped samples, 10 per round, one epoch at
    batch 10, SGD lr 0.1, the two-conv CNN (32 and 64 filters, max-pool, 128 hidden units).

    Every device holds its own 50 samples while the population fits in `samples` (1,000 devices:
    CIFAR-10's 50,000); a larger population draws its devices' samples from that pool.
    """
    distinct = population * SAMPLES_PER_DEVICE <= samples
    return build_config(
        {
            "name": f"bench-{population}",
            "seed": seed,
            "data": {
                "name": "synthetic",
                "train_samples": population * SAMPLES_PER_DEVICE if distinct else samples,
                "test_samples": test_samples,
                "image_size": 32,
                "channels": 3,
            },
            "partition": {"policy": "iid"}
            if distinct
            else {"policy": "pool", "samples_per_device": SAMPLES_PER_DEVICE},
            "model": {"name": "cnn"},
            "devices": {"count": population, "per_round": 10},
            "training": {
                "rounds": rounds,
                "local_epochs": 1,
                "batch_size": 10,
                "lr": 0.1,
                "momentum": 0.0,
                "eval_every": eval_every,
            },
            "logging": {"progress": False, "wandb": {"mode": "disabled"}, "checkpoint_every": 0},
        }
    )


def device_sequence(cfg: ExperimentConfig, data: ArrayData, partition: Partition) -> list[list[int]]:
    """The devices the platform trains in each round (its own sampler, so the floor trains the same)."""
    server = Server(cfg, data, partition)
    return [[j.device for j in server.plan(r)[0]] for r in range(cfg.training.rounds)]


def load_vector(vector: torch.Tensor, params: Sequence[torch.Tensor]) -> None:
    """Copy a flat vector into the parameters (torch's vector_to_parameters would alias it instead)."""
    offset = 0
    with torch.no_grad():
        for p in params:
            p.copy_(vector[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def _floor_worker(
    rank: int,
    cfg: ExperimentConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    indices: np.ndarray,
    offsets: np.ndarray,
    shape: tuple,
    classes: int,
    weights: torch.Tensor,
    sums: torch.Tensor,
    tasks: Any,
    done: Any,
) -> None:
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
            ids = torch.from_numpy(indices[offsets[d] : offsets[d + 1]])
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
        return float(
            sum(int((model(x[i : i + 1024]).argmax(1) == y[i : i + 1024]).sum()) for i in range(0, len(y), 1024))
            / len(y)
        )


def run_floor(
    cfg: ExperimentConfig,
    data: ArrayData,
    partition: Partition,
    sequence: Sequence[Sequence[int]],
    workers: int,
    phases: Optional[Phases] = None,
) -> dict[str, Any]:
    """Time the plain-PyTorch floor; returns wall and start-up seconds, per-round times (evaluation included)
    and evaluation seconds (next to nothing where a round had none), the last accuracy, RSS. `phases`: where
    its workers' start, first round, rounds, evaluations and shutdown are timed as the platform's are."""
    phases = phases or Phases()
    began = phases.now()
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
    procs = [
        ctx.Process(
            target=_floor_worker,
            args=(
                r,
                cfg,
                x,
                y,
                partition.indices,
                partition.offsets,
                data.input_shape,
                data.num_classes,
                weights,
                sums[r],
                tasks[r],
                done,
            ),
            daemon=True,
        )
        for r in range(workers)
    ]
    for p in procs:
        p.start()
    pids = [done.get()[2] for _ in procs]
    startup = time.perf_counter() - t0
    phases.add("workers ready", began, phases.now())
    began = phases.now()
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    rounds, evaluations, accuracies, rss = [], [], [], []
    try:
        for r, devices in enumerate(sequence):
            t = time.perf_counter()
            shares = [list(devices[k::workers]) for k in range(workers)]  # equal shards: round-robin
            busy = [k for k in range(workers) if shares[k]]
            for k in busy:
                tasks[k].put((r, shares[k]))
            total = sum(done.get()[2] for _ in busy)
            weights.copy_(torch.stack([sums[k] for k in busy]).sum(0) / total)
            t_eval = time.perf_counter()
            if (r + 1) % cfg.training.eval_every == 0 or r + 1 == len(sequence):
                load_vector(weights, params)
                accuracies.append(_evaluate(model, x_test, y_test))
                phases.repeat("evaluations", time.perf_counter() - t_eval)
            evaluations.append(time.perf_counter() - t_eval)
            rounds.append(time.perf_counter() - t)
            rss.append(rss_bytes([os.getpid(), *pids]))
            if r == 0 or r + 1 == len(sequence):
                phases.add("first round" if r == 0 else "rounds", began, phases.now())
                began = phases.now()
    finally:
        for q in tasks:
            q.put(None)
        for p in procs:
            p.join(timeout=30)
        phases.add("shutdown", began, phases.now())
    return {
        "wall": time.perf_counter() - t0,
        "startup": startup,
        "rounds": rounds,
        "evaluations": evaluations,
        "accuracy": accuracies[-1],
        "weights": weights.numpy().copy(),
        "rss": rss,
        "peak_rss": max(rss),
    }  # sampled once per round


def rss_bytes(pids: Sequence[int]) -> int:
    """Resident memory of the processes together (Linux /proc; 0 where it cannot be read)."""
    return 1024 * sum(proc_kib(p, "status", "VmRSS") for p in pids)


def _quantile(values: Sequence[float], q: int) -> float:
    """The q-th percentile (nearest rank, so it is one of the values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-q * len(ordered) // 100) - 1))]


def summary(
    kind: str, workers: int, population: int, cfg: ExperimentConfig, result: dict[str, Any], samples: int
) -> dict[str, Any]:
    """One table row (`samples`: the distinct training samples): wall and each phase (start-up, first
    round, steady rounds' p50 / p95 without evaluation, mean evaluation), throughput, memory."""
    rounds, evaluations = result["rounds"], result["evaluations"]
    training = [r - e for r, e in zip(rounds, evaluations)]
    steady = training[1:] or training
    every = cfg.training.eval_every
    evaluated = [e for r, e in enumerate(evaluations) if (r + 1) % every == 0 or r + 1 == len(evaluations)]
    updates = cfg.devices.per_round * len(rounds)
    train_seconds = result["wall"] - result["startup"]
    early, late = result["rss"][: max(1, len(rounds) // 10)], result["rss"][-max(1, len(rounds) // 10) :]
    return {
        "kind": kind,
        "workers": workers,
        "population": population,
        "rounds": len(rounds),
        "samples": samples,
        "wall_s": result["wall"],
        "startup_s": result["startup"],
        "first_round_s": training[0],
        "steady_p50_s": statistics.median(steady),
        "steady_p95_s": _quantile(steady, 95),
        "evaluation_s": statistics.mean(evaluated) if evaluated else 0.0,
        "device_updates_per_s": updates / train_seconds,
        "samples_per_s": updates * SAMPLES_PER_DEVICE * cfg.training.local_epochs / train_seconds,
        "peak_rss_mb": result["peak_rss"] / 2**20,
        "rss_growth_mb": (statistics.mean(late) - statistics.mean(early)) / 2**20,
        "accuracy": result["accuracy"],
    }


def medians(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (run, workers, devices): the median of each figure over the repeats."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["kind"], r["workers"], r["population"]), []).append(r)
    return [
        {k: statistics.median(g[k] for g in group) if isinstance(v, float) else v for k, v in group[0].items()}
        for group in groups.values()
    ]


def targets(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Each platform row against its floor (same workers and devices; medians over repeats): whole wall,
    first round over its own steady p50, evaluation; with the bounds the platform aims for."""
    rows = medians(rows)
    floors = {(r["workers"], r["population"]): r for r in rows if r["kind"] == "floor"}
    lines = []
    for r in rows:
        f = floors.get((r["workers"], r["population"]))
        if r["kind"] != "platform" or f is None:
            continue
        checks = [
            ("platform/floor wall", r["wall_s"] / f["wall_s"], 1.10),
            ("first round/steady p50", r["first_round_s"] / r["steady_p50_s"], 1.5),
            ("evaluation/floor's", r["evaluation_s"] / f["evaluation_s"] if f["evaluation_s"] else 0.0, 1.1),
        ]
        lines.append(
            f"{r['workers']} worker(s), {r['population']:,} devices: "
            + "; ".join(
                f"{name} {v:.2f} ({'met' if v <= bound else 'missed'}, at most {bound:.2f})"
                for name, v, bound in checks
            )
        )
    return lines


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The benchmark's Markdown table; `overhead` is the platform's wall over the floor's, same workers."""
    floor = {(r["workers"], r["population"]): r["wall_s"] for r in rows if r["kind"] == "floor"}
    lines = [
        "| run | workers | devices | samples | rounds | wall (s) | start-up (s) | first round (s) | "
        "steady p50 (s) | steady p95 (s) | evaluation (s) | overhead | device-updates/s | peak RSS (MB) | "
        "RSS growth (MB) | accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = floor.get((r["workers"], r["population"]))
        ratio = f"{r['wall_s'] / base:.2f}x" if base and r["kind"] == "platform" else "-"
        lines.append(
            f"| {r['kind']} | {r['workers']} | {r['population']:,} | {r['samples']:,} | {r['rounds']} | "
            f"{r['wall_s']:.1f} | {r['startup_s']:.1f} | {r['first_round_s']:.2f} | {r['steady_p50_s']:.3f} | "
            f"{r['steady_p95_s']:.3f} | {r['evaluation_s']:.2f} | {ratio} | "
            f"{r['device_updates_per_s']:.1f} | {r['peak_rss_mb']:,.0f} | {r['rss_growth_mb']:+.1f} | "
            f"{r['accuracy']:.4f} |"
        )
    return "\n".join(lines)


# the workloads `edgeweave bench --batching` compares: a step dominated by overhead, and a real one
BATCHING: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "cnn width 0.25, digits 8x8": ({"name": "digits"}, {"name": "cnn", "width": 0.25}),
    "two-conv CNN, 32x32x3": (
        {"name": "synthetic", "train_samples": 5000, "test_samples": 100, "image_size": 32, "channels": 3},
        {"name": "cnn"},
    ),
}


def batching_workload(data: dict, model: dict, batched: str, per_round: int = 10) -> ExperimentConfig:
    """Devices of 50 samples (from a shared pool, so all alike in size), `per_round` a round, batch 10."""
    return build_config(
        {
            "name": "bench-batching",
            "seed": 0,
            "data": data,
            "model": model,
            "partition": {"policy": "pool", "samples_per_device": SAMPLES_PER_DEVICE},
            "devices": {"count": 100, "per_round": per_round},
            "training": {
                "rounds": 1,
                "local_epochs": 1,
                "batch_size": 10,
                "lr": 0.1,
                "momentum": 0.0,
                "batched": batched,
            },
            "logging": {"progress": False, "wandb": {"mode": "disabled"}, "checkpoint_every": 0},
        }
    )


def run_batching(rounds: int, per_round: int = 16) -> list[dict[str, Any]]:
    """Device-updates per second of one worker (one thread, no Ray) training its rounds one device after
    another (`batched: off`) and as `auto` decides, and the largest relative difference of an update."""
    from edgeweave.platform.data import load_dataset
    from edgeweave.platform.partition import partition_data
    from edgeweave.platform.run.client import Client

    torch.set_num_threads(1)
    rows = []
    for name, (data_cfg, model_cfg) in BATCHING.items():
        speeds, sums = {}, {}
        for mode in ("off", "auto"):
            cfg = batching_workload(data_cfg, model_cfg, mode, per_round)
            data = load_dataset(cfg.data, cfg.seed)
            part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
            server, client = Server(cfg, data, part), Client(cfg, data, part)
            plans = [server.plan(r)[0] for r in range(rounds)]
            client.run(0, server.weights, plans[0])  # warm: the first pass sets up what later ones reuse
            t = time.perf_counter()
            partials = [client.run(r, server.weights, jobs) for r, jobs in enumerate(plans)]
            speeds[mode] = sum(len(j) for j in plans) / (time.perf_counter() - t)
            sums[mode] = np.concatenate([p.sums / np.maximum(p.counts, 1) for p in partials])
            batched = server.batching
        diff = np.abs(sums["auto"] - sums["off"]) / np.maximum(np.abs(sums["off"]), 1e-3)
        rows.append(
            {
                "workload": name,
                "per_round": per_round,
                "batch_mflops": server.slicer.flops(None) * 10 / 1e6,
                "batched": batched,
                "sequential_per_s": speeds["off"],
                "auto_per_s": speeds["auto"],
                "speedup": speeds["auto"] / speeds["off"],
                "max_rel_diff": float(diff.max()),
            }
        )
    return rows


def batching_table(rows: Sequence[dict[str, Any]]) -> str:
    """`run_batching`'s Markdown table."""
    lines = [
        "| workload | devices | training MFLOPs per mini-batch | `auto` batches | device-updates/s, one by one | "
        "device-updates/s, `auto` | speed-up | largest relative difference |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['workload']} | {r['per_round']} | {r['batch_mflops']:.1f} | {'yes' if r['batched'] else 'no'} | "
        f"{r['sequential_per_s']:.1f} | {r['auto_per_s']:.1f} | {r['speedup']:.2f}x | {r['max_rel_diff']:.1e} |"
        for r in rows
    ]
    return "\n".join(lines)
