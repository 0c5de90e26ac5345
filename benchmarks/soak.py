"""Soak: the quickstart for many rounds with a device worker killed every k rounds, against the
same run undisturbed. Checks that it finishes, loses no round, and ends with identical metrics
and weights; prints the figures for the "what survives what" table (docs/howto/resuming.md) and writes them as
JSON to --out.

    python benchmarks/soak.py [--rounds 500] [--kill-every 50] [--out FILE] [--smoke-test]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np
import ray

from edgeweave.actors.session import Simulation
from edgeweave.platform.config.schema import load_config
from edgeweave.platform.data import load_dataset
from edgeweave.platform.partition import partition_data


def run(cfg, data, part, kill_every: int) -> dict:
    t0 = time.perf_counter()
    with Simulation(cfg, data, part) as sim:
        metrics = []
        for r in range(cfg.training.rounds):
            worker = ray.get(sim.driver.worker.remote(0))
            ref = sim.driver.round.remote(r)
            if kill_every and r % kill_every == kill_every // 2:  # mid-run rounds, mid-round
                threading.Timer(0.05, ray.kill, args=(worker,)).start()
            metrics.append(ray.get(ref))
        weights = sim.weights()
    return {"metrics": metrics, "weights": weights, "wall": time.perf_counter() - t0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=500)
    p.add_argument("--kill-every", type=int, default=50)
    p.add_argument("--out", type=Path, default=Path("runs/bench-soak.json"))
    p.add_argument("--smoke-test", action="store_true", help="4 rounds, a kill every 2")
    args = p.parse_args()
    rounds, every = (4, 2) if args.smoke_test else (args.rounds, args.kill_every)
    cfg = load_config(
        "configs/quickstart.yaml",
        [
            f"training.rounds={rounds}",
            "training.eval_every=10",
            "logging.progress=false",
            "logging.wandb.mode=disabled",
        ],
    )
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed, data.owners)
    ray.init(address="local", include_dashboard=False, logging_level="WARNING")
    try:
        calm = run(cfg, data, part, 0)
        hurt = run(cfg, data, part, every)
    finally:
        ray.shutdown()

    def strip(ms):
        timing = ("device_records", "workers", "workers_lost", "evaluation_seconds")  # who and how long, not what
        return [{k: v for k, v in m.items() if k not in timing} for m in ms]

    same_metrics = strip(calm["metrics"]) == strip(hurt["metrics"])
    same_weights = bool(np.array_equal(calm["weights"], hurt["weights"]))
    result = {
        "rounds": rounds,
        "kills": hurt["metrics"][-1]["workers_lost"],
        "rounds_logged": len(hurt["metrics"]),
        "identical_metrics": same_metrics,
        "identical_weights": same_weights,
        "final_accuracy": hurt["metrics"][-1]["test_accuracy"],
        "wall_undisturbed_s": round(calm["wall"], 1),
        "wall_with_kills_s": round(hurt["wall"], 1),
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    if not (same_metrics and same_weights and result["rounds_logged"] == rounds):
        raise SystemExit("soak: the disturbed run differs from the undisturbed one")


if __name__ == "__main__":
    main()
