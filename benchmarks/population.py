"""Per-round cost against population size: 1,000 to 100,000 devices with markov traces.

Two measurements, each at every population:
- server: the driver's own work per round (sample available devices from their traces,
  time the round, fold the partials in), with no training; median over rounds;
- round: whole rounds on a local Ray with 2 device workers, 10 devices of 5 samples per round,
  median wall time per round after the first.
Memory per device is the driver's per-device state: tier, shard size, partition offsets and
sample indices. Writes a Markdown table to stdout and JSON next to --out.

    python benchmarks/population.py [--populations 1000 100000] [--rounds 30] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from edgeweave.platform.config.schema import build_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.server import Server
from edgeweave.platform.train.aggregate import Partial

SAMPLES_PER_DEVICE = 5


def config(population: int, rounds: int):
    return build_config(
        {
            "name": f"population-{population}",
            "data": {
                "name": "synthetic",
                "num_classes": 10,
                "train_samples": SAMPLES_PER_DEVICE * population,
                "test_samples": 500,
                "image_size": 8,
                "channels": 1,
            },
            "partition": {"policy": "iid"},
            "model": {"name": "cnn"},
            "devices": {
                "count": population,
                "per_round": 10,
                "flops_per_second": 1e8,
                "resources": {"name": "markov", "period": 5},
                "deadline": 2.0,
                "stragglers": "partial",
            },
            "training": {"rounds": rounds, "batch_size": 5, "eval_every": 1000},
            "logging": {"progress": False, "wandb": {"mode": "disabled"}},
        }
    )


def server_overhead(cfg, data, part, rounds: int) -> float:
    server = Server(cfg, data, part)
    times = []
    for r in range(rounds):
        t0 = time.perf_counter()
        jobs, _ = server.plan(r)
        partial = Partial.zeros(server.layout.size)
        partial.records = [{"device": j.device, "samples": 5, "steps": 1, "loss": 0.0} for j in jobs]
        server.update([partial])
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def state_bytes_per_device(server: Server, part) -> float:
    total = server.view.tier_of.nbytes + server.shard_sizes.nbytes + part.offsets.nbytes + part.indices.nbytes
    return total / len(server.shard_sizes)


def ray_round(cfg, data, part, rounds: int) -> float:
    from edgeweave.actors.session import Simulation

    with Simulation(cfg, data, part, num_workers=2) as sim:
        times = []
        for r in range(rounds):
            t0 = time.perf_counter()
            sim.round(r)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--populations", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--smoke-test", action="store_true", help="tiny populations, few rounds")
    p.add_argument("--out", type=Path, default=Path("runs/bench-population.json"))
    args = p.parse_args()
    if args.smoke_test:
        args.populations, args.rounds = [200, 2000], 4

    import logging

    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    rows = []
    try:
        for n in args.populations:
            cfg = config(n, args.rounds)
            data = load_dataset(cfg.data, cfg.seed)
            part = partition_data(cfg.partition, data.y_train, n, cfg.seed, data.owners)
            server = Server(cfg, data, part)
            rows.append(
                {
                    "population": n,
                    "server_ms": 1000 * server_overhead(cfg, data, part, args.rounds),
                    "round_ms": 1000 * ray_round(cfg, data, part, args.rounds),
                    "bytes_per_device": state_bytes_per_device(server, part),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        ray.shutdown()
    base = rows[0]
    print("\n| devices | driver work per round | whole round (2 workers) | vs smallest | driver state per device |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['population']:,} | {r['server_ms']:.2f} ms | {r['round_ms']:.1f} ms | "
            f"{r['round_ms'] / base['round_ms']:.2f}x | {r['bytes_per_device']:.0f} B |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
