"""What a run's invariant checks cost: their time per round against the round's, on resources that change often.

The checks (`edgeweave/platform/run/invariants.py`) re-read the resource model once per stretch of
constant speed each device ran, and add up the records. Here the quickstart's devices (digits,
10 of 20 per round) train with resources that change every 0.3 s of virtual time (markov) and on
the shipped trace, in sync rounds and in async steps, and so does `edgeweave bench`'s workload
(1,000 devices of 50 CIFAR-shaped samples, the two-conv CNN; not under --smoke-test), without Ray;
every round's checks are timed apart from the rest of the round. Writes a Markdown table to stdout
and JSON to --out.

    python benchmarks/invariants.py [--rounds 30] [--out invariants.json] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from edgeweave.platform.bench.rounds import workload
from edgeweave.platform.config.schema import ExperimentConfig, load_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.partition import partition_data
from edgeweave.platform.run.client import Client
from edgeweave.platform.run.servers import build_server

ROOT = Path(__file__).resolve().parents[1]
CASES = {  # name: (config, overrides)
    "markov 0.3 s, sync, partial": (
        "quickstart.yaml",
        ["devices.resources={name: markov, period: 0.3}", "devices.deadline=3.3", "devices.stragglers=partial"],
    ),
    "markov 0.3 s, async": (
        "quickstart.yaml",
        ["devices.resources={name: markov, period: 0.3}", "aggregation={mode: async, buffer: 5, concurrency: 10}"],
    ),
    "trace, sync, drop": ("devices_trace.yaml", []),
    "trace, async": ("devices_trace.yaml", ["aggregation={mode: async, buffer: 5, concurrency: 10}"]),
}


BENCH = "edgeweave bench workload, constant"


def shipped(config: str, overrides: list[str], rounds: int) -> ExperimentConfig:
    return load_config(
        ROOT / "configs" / config,
        [*overrides, f"training.rounds={rounds}", "logging.progress=false", "logging.wandb.mode=disabled"],
    )


def measure(cfg: ExperimentConfig, rounds: int) -> dict[str, float]:
    """Median wall milliseconds per round of the whole round and of its checks, and the checks' share."""
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed, data.owners)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    spent = [0.0]
    step = server.checks.step

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        step(*args, **kwargs)
        spent[0] += time.perf_counter() - t0

    server.checks.step = timed
    rounds_ms, checks_ms = [], []
    for r in range(rounds):
        spent[0] = 0.0
        t0 = time.perf_counter()
        units = server.plan_units(r)
        server.fold([[client.run(u.version, u.weights, u.jobs, server.shared)] for u in units])
        rounds_ms.append(1e3 * (time.perf_counter() - t0))
        checks_ms.append(1e3 * spent[0])
    return {
        "round_ms": statistics.median(rounds_ms),
        "checks_ms": statistics.median(checks_ms),
        "checks_share": sum(checks_ms) / sum(rounds_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--out", default="invariants.json")
    parser.add_argument("--smoke-test", action="store_true", help="3 rounds each: checks that it runs")
    args = parser.parse_args()
    rounds = 3 if args.smoke_test else args.rounds
    results = {name: measure(shipped(config, overrides, rounds), rounds) for name, (config, overrides) in CASES.items()}
    if not args.smoke_test:
        results[BENCH] = measure(workload(rounds=rounds), rounds)
    print("| resources, aggregation | round (median ms) | checks (median ms) | checks' share of the time |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['round_ms']:.1f} | {r['checks_ms']:.2f} | {100 * r['checks_share']:.2f} % |")
    Path(args.out).write_text(json.dumps({"rounds": rounds, "results": results}, indent=2))


if __name__ == "__main__":
    main()
