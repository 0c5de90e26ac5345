"""One hash per method variant of what a run computes: a check that moving code changed nothing.

Each variant is a short digits run over shifting resources (Markov availability and speed with a
period that does not divide the deadline, partial stragglers) trained in this process, no Ray: one
server, one client training every device in turn. Its hash covers the final weights' bytes and every
round's metrics and device records (floats written in full). Run it before and after a change that
should not change behaviour and compare the files:

    python benchmarks/equivalence.py --out before.json
    python benchmarks/equivalence.py --out after.json --check before.json
    python benchmarks/equivalence.py --smoke-test   # one round per variant
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

BASE: dict[str, Any] = {
    "name": "equivalence",
    "seed": 7,
    "data": {"name": "digits"},
    "partition": {"policy": "dirichlet", "alpha": 0.5, "min_samples": 10},
    "model": {"name": "cnn"},
    "devices": {
        "count": 12,
        "per_round": 6,
        "flops_per_second": 2.3e8,
        "tiers": [
            {"name": "strong", "speed": 1.0, "share": 0.5, "bandwidth": 2.0e7},
            {"name": "weak", "speed": 0.37, "share": 0.5, "bandwidth": 7.0e6},
        ],
        "resources": {
            "name": "markov",
            "period": 1.3,
            "p_off": 0.1,
            "p_on": 0.3,
            "p_slow": 0.3,
            "p_fast": 0.4,
            "slow": 0.45,
        },
        "deadline": 7.7,
        "stragglers": "partial",
    },
    "training": {"rounds": 3, "batch_size": 16, "lr": 0.05, "momentum": 0.9},
    "strategy": {"name": "fedavg"},
    "logging": {"progress": False, "wandb": {"mode": "disabled"}},
}

VARIANTS: dict[str, dict[str, Any]] = {
    "fedavg": {},
    "fedprox": {"training": {"prox_mu": 0.01}},
    "fedadam": {"aggregation": {"server": {"name": "adam", "lr": 0.01}}},
    "fedavgm": {"aggregation": {"server": {"name": "momentum", "beta1": 0.9}}},
    "scaffold": {"strategy": {"name": "scaffold"}},
    "heterofl": {"strategy": {"name": "heterofl"}},
    "fjord": {"strategy": {"name": "fjord"}},
    "fedrolex": {"strategy": {"name": "fedrolex"}},
    "fd": {"strategy": {"name": "fd"}},
    "small": {"strategy": {"name": "small"}},
    "distreal": {"strategy": {"name": "distreal", "front": str(ROOT / "configs/fronts/digits_cnn.json")}},
    "taskwise": {
        "strategy": {
            "name": "taskwise",
            "mode": "grouped",
            "groups": 4,
            "trunk": 1,
            "tasks": "sampled",
            "tasks_per_device": 2,
        }
    },
    "central": {"strategy": {"name": "central"}, "devices": {"deadline": None, "stragglers": "wait"}},
    "async": {"aggregation": {"mode": "async", "buffer": 2, "concurrency": 4}},
}


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over`'s keys, dictionaries merged key by key."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def variant_hash(name: str, out_dir: Path, rounds: int = 3) -> str:
    """The sha256 of a variant's final weights and its rounds' metrics and records."""
    import torch

    from edgeweave.platform.config.schema import build_config
    from edgeweave.platform.data import load_dataset
    from edgeweave.platform.partition import partition_data
    from edgeweave.platform.run.client import Client
    from edgeweave.platform.run.servers import build_server

    raw = merged(BASE, VARIANTS[name])
    raw["logging"] = {**raw["logging"], "out_dir": str(out_dir)}
    raw["training"] = {**raw["training"], "rounds": rounds}
    cfg = build_config(raw)
    torch.set_num_threads(1)
    data = load_dataset(cfg.data, cfg.seed)
    part = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed, data.owners)
    server, client = build_server(cfg, data, part), Client(cfg, data, part)
    digest = hashlib.sha256()
    for r in range(cfg.training.rounds):
        units = server.plan_units(r)
        metrics, records = server.fold(
            [[client.run(u.version, u.weights, u.jobs, server.shared, server.stored(u.jobs))] for u in units]
        )
        digest.update(json.dumps([metrics, records], sort_keys=True, default=repr).encode())
    digest.update(server.weights.tobytes())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/equivalence.json"))
    parser.add_argument("--check", type=Path, help="a file of an earlier run: exit 1 on any variant that differs")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--smoke-test", action="store_true", help="one round per variant")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        hashes = {}
        for name in args.variants:
            hashes[name] = variant_hash(name, Path(tmp), 1 if args.smoke_test else 3)
            print(f"{name:10s} {hashes[name]}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(hashes, indent=1) + "\n")
    if args.check:
        before = json.loads(args.check.read_text())
        differ = [n for n in hashes if before.get(n) != hashes[n]]
        print("identical" if not differ else f"differ: {', '.join(differ)}")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
