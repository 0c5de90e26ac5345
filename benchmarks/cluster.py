"""Cluster scaling: device-updates per second against workers and nodes, and the driver's cost per round.

Runs on the cluster that RAY_ADDRESS (or --address) names. Without one it starts a cluster of
--simulate nodes on this machine (ray.cluster_utils.Cluster, --cpus-per-node CPUs each): that checks
the path works across nodes, not how fast a real cluster is.

- strong scaling: a fixed round of --devices devices, trained by 1, 2, ... workers;
- weak scaling: --per-worker devices per worker, so the round grows with the pool.

The workload is `edgeweave bench`'s: devices of 50 CIFAR-shaped samples, one epoch at batch 10,
the two-conv CNN. Each point is a fresh run (its own driver and pool); its steady rounds (not the
first, not the evaluated last) give the median round, device-updates per second (devices trained
per second of round), the driver's own seconds per round (planning, putting the weights,
aggregating) and the nodes its workers ran on. Writes JSON, a Markdown table and a plot.

    python benchmarks/cluster.py [--workers 1 2 4 8] [--devices 32] [--per-worker 8] [--rounds 8]
    python benchmarks/cluster.py --simulate 2 --smoke-test
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import ray  # noqa: E402

from edgeweave.actors.session import Simulation  # noqa: E402
from edgeweave.platform.bench.rounds import workload  # noqa: E402
from edgeweave.platform.config.schema import build_config  # noqa: E402
from edgeweave.platform.data import load_dataset  # noqa: E402
from edgeweave.platform.partition import partition_data  # noqa: E402

POPULATION = 1000


def point(per_round: int, workers: int, rounds: int) -> dict:
    """One run of `rounds` rounds with `per_round` devices each on (at most) `workers` workers."""
    raw = workload(POPULATION, rounds, eval_every=rounds).to_dict()
    raw["devices"]["per_round"] = per_round
    cfg = build_config(raw)
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed)
    with Simulation(cfg, data, part, num_workers=workers) as sim:
        walls, pool = [], []
        for r in range(rounds):
            t0 = time.perf_counter()
            metrics = sim.round(r)
            walls.append(time.perf_counter() - t0)
            pool.append(metrics["workers"])
        nodes = {node for _, node in ray.get(sim.driver.workers.remote())}
        seconds = ray.get(sim.driver.timings.remote())
    steady = slice(1, rounds - 1)
    round_s = statistics.median(walls[steady])
    return {
        "devices": per_round,
        "workers": min(pool[steady]),
        "nodes": len(nodes),
        "round_s": round_s,
        "updates_per_s": per_round / round_s,
        "driver_s": statistics.median(s["driver"] for s in seconds[steady]),
        "train_s": statistics.median(s["train"] for s in seconds[steady]),
    }


def table(rows: list[dict]) -> str:
    base = {mode: next(r for r in rows if r["mode"] == mode) for mode in {r["mode"] for r in rows}}
    lines = [
        "| scaling | workers | nodes | devices per round | round p50 (s) | device-updates/s | efficiency | "
        "driver per round (s) | driver share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        b = base[r["mode"]]
        ideal = b["updates_per_s"] * r["workers"] / b["workers"]
        lines.append(
            f"| {r['mode']} | {r['workers']} | {r['nodes']} | {r['devices']} | {r['round_s']:.3f} | "
            f"{r['updates_per_s']:.1f} | {r['updates_per_s'] / ideal:.2f} | {r['driver_s']:.4f} | "
            f"{r['driver_s'] / r['round_s']:.1%} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, where: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, marker in (("strong", "o"), ("weak", "s")):
        pts = [r for r in rows if r["mode"] == mode]
        if not pts:
            continue
        w = [r["workers"] for r in pts]
        (line,) = ax.plot(w, [r["updates_per_s"] for r in pts], marker=marker, label=f"{mode} scaling")
        ax.plot(
            w,
            [pts[0]["updates_per_s"] * x / pts[0]["workers"] for x in w],
            ls=":",
            color=line.get_color(),
            label=f"{mode}: ideal",
        )
    ax.set_xlabel("device workers")
    ax.set_ylabel("device-updates per second")
    ax.set_title(f"edgeweave on {where}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", default=os.environ.get("RAY_ADDRESS"), help="the cluster (default: RAY_ADDRESS)")
    p.add_argument("--simulate", type=int, default=2, help="without a cluster: nodes to start on this machine")
    p.add_argument("--cpus-per-node", type=float, default=1.0)
    p.add_argument(
        "--store-mb",
        type=int,
        default=1024,
        help="object store per simulated node (Ray's test default, 150 MB, is smaller than the data)",
    )
    p.add_argument("--workers", type=int, nargs="+", help="pool sizes (default: 1, 2, 4, ... up to the CPUs)")
    p.add_argument("--devices", type=int, default=32, help="devices per round, strong scaling")
    p.add_argument("--per-worker", type=int, default=8, help="devices per round per worker, weak scaling")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--out", type=Path, default=Path("runs/bench-cluster"))
    p.add_argument(
        "--smoke-test", action="store_true", help="strong scaling only: 1 and 2 workers, 3 rounds of 2 devices"
    )
    args = p.parse_args()
    if args.smoke_test:
        args.workers, args.devices, args.rounds = [1, 2], 2, 3
    if args.rounds < 3:
        raise SystemExit("--rounds must be at least 3 (the first and the last are not timed)")
    cluster = None
    if args.address:
        ray.init(address=args.address, logging_level=logging.WARNING)
        where = f"the cluster at {args.address}"
    else:
        from ray.cluster_utils import Cluster

        node = {"num_cpus": args.cpus_per_node, "object_store_memory": args.store_mb * 2**20}
        cluster = Cluster(initialize_head=True, head_node_args=node)
        for _ in range(args.simulate - 1):
            cluster.add_node(**node)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level=logging.WARNING)
        where = f"{args.simulate} simulated nodes of {args.cpus_per_node:g} CPU (one machine)"
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        nodes = sum(n["Alive"] for n in ray.nodes())
        workers = args.workers or sorted({min(2**i, cpus) for i in range(cpus.bit_length() + 1)})
        rows, measured = [], {}
        for mode in ("strong",) if args.smoke_test else ("strong", "weak"):
            for w in workers:
                per_round = args.devices if mode == "strong" else args.per_worker * w
                if (per_round, w) not in measured:  # strong and weak share the point where they meet
                    print(f"{mode}: {w} worker(s), {per_round} devices per round, {args.rounds} rounds", flush=True)
                    measured[per_round, w] = point(per_round, w, args.rounds)
                rows.append({"mode": mode, **measured[per_round, w]})
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
    md = f"{where}: {nodes} nodes, {cpus} CPUs\n\n" + table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cluster.json").write_text(
        json.dumps({"where": where, "nodes": nodes, "cpus": cpus, "rows": rows}, indent=1)
    )
    (args.out / "cluster.md").write_text(md + "\n")
    plot(rows, args.out / "cluster.png", where)
    print(md)
    print(f"\ncluster -> {args.out}/cluster.md, cluster.json, cluster.png")


if __name__ == "__main__":
    main()
