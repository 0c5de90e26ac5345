"""The floor as a whole command: a FedAvg config's rounds done by plain PyTorch processes, start to exit.

`python -m edgeweave.platform.bench.floor_command CONFIG --out DIR [--plugin P] [--set K=V] [--workers N]`
reads the config, loads its data, trains the same devices on the same mini-batches as `edgeweave
run` would (`bench.run_floor`: no Ray, shared memory, one process per worker), evaluates as often,
and writes `DIR/timeline.json` with the same phases as a run's. `edgeweave bench --whole` times it
against `edgeweave run` on the same config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from edgeweave.platform.run.phases import Phases


def main(argv: Optional[Sequence[str]] = None) -> int:
    phases = Phases(from_process_start=argv is None)
    phases.add("python start", 0.0, phases.now())
    parser = argparse.ArgumentParser(prog="python -m edgeweave.platform.bench.floor_command", description=__doc__)
    parser.add_argument("config")
    parser.add_argument("--out", required=True, help="directory for timeline.json and result.json")
    parser.add_argument("--plugin", action="append", default=[])
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    from edgeweave.platform.core.errors import UserError

    try:
        with phases.phase("config and plugins"):
            from edgeweave.platform.config.schema import load_config

            cfg = load_config(args.config, args.set, plugins=args.plugin)
        if cfg.strategy.name != "fedavg" or cfg.aggregation.mode != "sync":
            raise UserError(
                f"strategy.name = {cfg.strategy.name!r}, aggregation.mode = {cfg.aggregation.mode!r}: "
                "the floor trains synchronous fedavg only"
            )
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with phases.phase("data load"):
        from edgeweave.platform.data import load_dataset
        from edgeweave.platform.partition import partition_data

        data = load_dataset(cfg.data, cfg.seed)
        partition = partition_data(cfg.partition, data.y_train, cfg.devices.count, cfg.seed, data.owners)
    with phases.phase("device sequence"):
        from edgeweave.platform.bench.rounds import device_sequence, run_floor

        sequence = device_sequence(cfg, data, partition)
    result = run_floor(cfg, data, partition, sequence, args.workers, phases)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    phases.save(out)
    (out / "result.json").write_text(json.dumps({"accuracy": result["accuracy"], "workers": args.workers}) + "\n")
    print(phases.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
